"""Values spelled the way pasted text spells them: Unicode compatibility forms, invisible
format characters and loose separators are seen through, and the ORIGINAL characters (the
invisible ones inside a value included) are what redact() replaces and the guard masks."""
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redaction import OutputGuard, detect, redact
from redaction.folding import fold

NBSP, NNBSP, ZWSP, ZWJ, WJ, SHY = "\u00a0", "\u202f", "\u200b", "\u200d", "\u2060", "\u00ad"
FW = str.maketrans("0123456789", "０１２３４５６７８９")

# (label, type, value as pasted)
SPELLINGS = [
    ("card no-break spaces", "CREDIT_CARD", NBSP.join(["4111", "1111", "1111", "1111"])),
    ("card narrow no-break spaces", "CREDIT_CARD", NNBSP.join(["5555", "5555", "5555", "4444"])),
    ("card dots", "CREDIT_CARD", "4111.1111.1111.1111"),
    ("card double spaces", "CREDIT_CARD", "4111  1111  1111  1111"),
    ("card mixed separators", "CREDIT_CARD", "4111 1111-1111 - 1111"),
    ("card one group per line", "CREDIT_CARD", "4111\n1111\n1111\n1111"),
    ("card full-width digits", "CREDIT_CARD", "4111 1111 1111 1111".translate(FW)),
    ("card zero-width spaces", "CREDIT_CARD", f"4111{ZWSP}1111{ZWSP}1111{ZWSP}1111"),
    ("amex zero-width inside a group", "CREDIT_CARD", f"3782 82{ZWJ}2463 10005"),
    ("iban no-break spaces", "IBAN_CODE", NBSP.join("DE89 3704 0044 0532 0130 00".split())),
    ("e-mail full-width at", "EMAIL_ADDRESS", "jane.doe\uff20example.com"),
    ("e-mail zero-width in local part", "EMAIL_ADDRESS", f"jane{ZWSP}.doe@example.com"),
    ("e-mail soft hyphen in domain", "EMAIL_ADDRESS", f"jane.doe@exam{SHY}ple.com"),
    ("aws key zero-width inside", "SECRET", f"AKIA{WJ}IOSFODNN7EXAMPLE"),
    ("aws key zero-width joiner", "SECRET", f"AKIAIOSF{ZWJ}ODNN7EXAMPLE"),
]


@pytest.mark.parametrize("label,type_,value", SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_detect_sees_through_and_spans_the_original(label, type_, value):
    text = f"Please use {value} for this."
    spans = [s for s in detect(text) if s.type == type_]
    assert [text[s.start:s.end] for s in spans] == [value]


@pytest.mark.parametrize("label,type_,value", SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_redact_replaces_the_original_characters(label, type_, value):
    text = f"Ref: {value}\nthanks"
    red = redact(text, {})
    assert red.counts.get(type_) == 1
    assert value not in red.text and red.text.startswith("Ref: [") and red.text.endswith("]\nthanks")
    placeholder = red.text[len("Ref: "):-len("\nthanks")]
    assert red.mapping[placeholder] == value  # restored exactly as the user wrote it


@pytest.mark.parametrize("label,type_,value", [s for s in SPELLINGS if s[1] in ("CREDIT_CARD", "SECRET")],
                         ids=[s[0] for s in SPELLINGS if s[1] in ("CREDIT_CARD", "SECRET")])
def test_output_guard_masks_the_spellings(label, type_, value):
    guard = OutputGuard()
    out = guard.feed(f"Sure, here it is: {value} and more") + guard.flush()
    assert value not in out and "[REDACTED" in out
    assert guard.masked_counts == {type_: 1}


def test_no_card_inside_an_iban_shaped_token():
    # A Diners-shaped, Luhn-valid 16-digit window sits inside this IBAN-shaped token.
    for text in ("IBAN FR76 3000 6000 0112 3456 7890 189", "FR76 3000 6000 0112 3456 7890 189",
                 "acct FR7630006000011234567890189"):
        assert [s.type for s in detect(text) if s.type == "CREDIT_CARD"] == []


def test_fold_maps_every_folded_span_back():
    text = f"a{ZWSP}b\uff20ｃ {NBSP}x€y {SHY}"
    folded = fold(text)
    assert folded.text == "ab@c  x€y "
    assert folded.span(0, 4) == (0, 5)  # "ab@c" covers the zero-width space inside
    assert folded.span(5, 6) == (6, 7)  # the folded no-break space is the original one
    assert fold("plain ascii") is None and fold("Grüße, 4,20 €") is None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab1 .@\uff20\u200b\u00a0\u00ad€\uff11é\n", max_size=30))
def test_fold_offsets_round_trip(text):
    folded = fold(text)
    if folded is None:
        return
    for i, ch in enumerate(folded.text):
        original = text[folded.orig(i)]
        assert ch == original or unicodedata.normalize("NFKC", original) == ch
    # Every original character is either kept, folded, or a dropped format character.
    kept = {folded.orig(i) for i in range(len(folded.text))}
    assert all(j in kept or unicodedata.category(text[j]) == "Cf" for j in range(len(text)))


def test_long_capital_runs_stay_linear():
    # IBAN-shaped look-behinds run before every card and phone candidate: a long run of
    # capitals and digits in front of one (a PEM line, a key) must not make them slow.
    import time

    text = ("AB12" + "C7" * 3000 + " 4111 1111 1111 1111 tel +44 20 7946 0958\n") * 3
    start = time.perf_counter()
    detect(text)
    assert time.perf_counter() - start < 0.5
