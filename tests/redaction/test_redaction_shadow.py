"""The class string (redaction/shadow.py) stands in for the text in the digit-run scan:
both must find the same runs, for any text, including digits beyond Latin-1."""
from hypothesis import given, settings
from hypothesis import strategies as st

from redaction.pii import _DIGIT_HINT_RE, digit_runs
from redaction.shadow import classes

ALPHABET = "0123456789 .()-/AZaz?é€\n\t+,:٣७"  # Arabic-Indic and Devanagari digits too


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=120))
def test_digit_runs_match_the_text_scan(text):
    assert digit_runs(text) == [m.span() for m in _DIGIT_HINT_RE.finditer(text)]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_class_string_is_one_letter_per_character(text):
    shade = classes(text)
    if shade is None:
        assert any(ch.isdecimal() and ord(ch) > 255 for ch in text)
        return
    assert len(shade) == len(text)
    for ch, cls in zip(text, shade.decode()):
        expected = ("d" if "0" <= ch <= "9" else "s" if ch in " .()-/" else "n" if ch in "\n\r\t"
                    else "U" if "A" <= ch <= "Z" else None)
        if expected:
            assert cls == expected
        elif ord(ch) < 256 and ch.isalpha():
            assert cls == "a"
        else:
            assert cls == "x"


def test_non_latin_digits_fall_back_to_the_text():
    assert classes("call ٣٣٣ ٣٣٣ ٣٣٣٣") is None
    assert digit_runs("call ٣٣٣ ٣٣٣ ٣٣٣٣") == [m.span() for m in _DIGIT_HINT_RE.finditer("call ٣٣٣ ٣٣٣ ٣٣٣٣")]
