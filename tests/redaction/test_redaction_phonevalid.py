"""redaction.phonevalid rebuilds phonenumbers' validity test for speed; it must give
phonenumbers' own verdict, for real example numbers and for near misses."""
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType

from redaction.phonevalid import valid_number
from redaction.phones import _phone_valid, clear_cache

COUNTRY_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
TYPES = [PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE, PhoneNumberType.VOIP,
         PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST, PhoneNumberType.UAN]


def reference(country_code: int, nsn: str) -> bool:
    """What phonenumbers says: valid for the country's main region, or valid at all."""
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(nsn))
    zeros = len(nsn) - len(nsn.lstrip("0"))
    if zeros:
        number.italian_leading_zero = True
        number.number_of_leading_zeros = zeros
    main = phonenumbers.region_code_for_country_code(country_code)
    return phonenumbers.is_valid_number_for_region(number, main) or phonenumbers.is_valid_number(number)


def example_numbers():
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for type_ in TYPES:
            example = phonenumbers.example_number_for_type(region, type_)
            if example is not None:
                yield example.country_code, phonenumbers.national_significant_number(example)


EXAMPLES = sorted(set(example_numbers()))


def near_misses(nsn: str):
    yield nsn
    yield nsn[:-1] or "1"
    yield nsn + "7"
    yield str((int(nsn[0]) + 1) % 10) + nsn[1:]
    yield nsn[:-2] + "00" if len(nsn) > 2 else nsn


def test_there_are_many_examples():
    assert len(EXAMPLES) > 800


@pytest.mark.parametrize("chunk", range(8))
def test_examples_and_near_misses_match_phonenumbers(chunk):
    checked = 0
    for country_code, nsn in EXAMPLES[chunk::8]:
        for candidate in near_misses(nsn):
            if candidate.isdigit():
                assert valid_number(country_code, candidate) == reference(country_code, candidate), (
                    country_code, candidate)
                checked += 1
    assert checked > 400


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(COUNTRY_CODES), st.text(alphabet="0123456789", min_size=4, max_size=14))
def test_random_numbers_match_phonenumbers(country_code, nsn):
    assert valid_number(country_code, nsn) == reference(country_code, nsn)


def reference_candidate(cand: str, region: str) -> bool:
    """The detector's verdict computed with phonenumbers objects (the previous implementation):
    "+" or "00" starts an international number, NANP regions take 10 digits, else parse()."""
    digits = "".join(ch for ch in cand if ch.isdigit())
    if cand[0] == "+" or cand.startswith("00"):
        if "(0)" in cand:
            number = None
        else:
            intl = digits[2:] if cand[0] == "0" else digits
            for n in (1, 2, 3):
                if int(intl[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                    return bool(intl[n:]) and reference(int(intl[:n]), intl[n:])
            return False
    elif region in ("US", "CA"):
        if len(digits) == 11 and digits[0] == "1":
            digits = digits[1:]
        return len(digits) == 10 and reference(1, str(int(digits)))
    try:
        number = phonenumbers.parse(cand, region)
    except phonenumbers.NumberParseException:
        return False
    return reference(number.country_code, phonenumbers.national_significant_number(number))


@pytest.mark.parametrize(
    "text",
    ["+44 20 7946 0958", "+1 415 555 2671", "(415) 555-2671", "+49 30 901820", "0049 89 636 48018",
     "+33 1 42 68 53 00", "+39 06 698 1234", "+39 02 1234 5678", "+81 3-3224-5000", "+1 555 0100 000",
     "415 555 267", "+999 123 4567", "+7 495 123-45-67", "+86 10 6552 9988", "020 7946 0958"],
)
@pytest.mark.parametrize("region", ["US", "GB", "DE"])
def test_candidate_verdicts_match_phonenumbers(text, region):
    clear_cache()
    assert _phone_valid(text, region) == reference_candidate(text, region)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["+", "00", "", "("]),
    st.lists(st.text(alphabet="0123456789", min_size=1, max_size=5), min_size=2, max_size=5),
    st.sampled_from([" ", "-", "."]),
    st.sampled_from(["US", "GB", "DE", "FR", "IN"]),
)
def test_random_candidates_match_phonenumbers(head, groups, separator, region):
    cand = head + separator.join(groups)
    if head == "(":
        cand = "(" + groups[0] + ") " + separator.join(groups[1:])
    clear_cache()
    assert _phone_valid(cand, region) == reference_candidate(cand, region)
