"""The fifth pass's narrowed windows keep the result of the plain logic they stand in for:
each is compared with the previous implementation (written out here) on random texts."""
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from redaction import commercial, pii, secrets
from redaction.folding import fold
from redaction.needles import Hits
from redaction.rules import _ends_in, compiled
from tests.redaction.test_redaction_needles import term_rules_reference


def pieces(*choices, glue="0123456789 -.:=_/()+'\"xA\n"):
    return st.lists(st.one_of(st.sampled_from(choices), st.text(alphabet=glue, max_size=6)), max_size=10).map("".join)


# ---------------------------------------------------------------- prices: the amount before a marker
@settings(max_examples=500, deadline=None)
@given(pieces("1.200,00", "4 250", "12", "3 800,95", " k", "million", " bn", "\u00a0", "\u202f", "'", ",", ".",
              "the ", "is ", "€", "USD", "\t", "x9", "ms"))
def test_amount_before_a_marker_searched_from_its_character_run(text):
    for start in range(len(text) + 1):
        for last in (0, start // 2):
            lo = max(last, start - 40)
            plain = commercial._BEFORE_MARKER_RE.search(text, lo, start)
            narrowed = commercial._BEFORE_MARKER_RE.search(
                text, start - commercial._BEFORE_CHARS_RE.match(text[lo:start][::-1]).end(), start)
            assert (plain and plain.span()) == (narrowed and narrowed.span())


# ---------------------------------------------------------------- cards: region starts
OLD_CLASS_CARD_RE = re.compile(rb"d(?=[dsn]{12})(?:[sn]{0,3}d){13}d*(?:[sn]{1,3}d+)*")


@settings(max_examples=800, deadline=None)
@given(st.text(alphabet="dddddsnxU", max_size=80))
def test_card_regions_skip_starts_after_a_digit(cls):
    raw = cls.encode()
    assert [m.span() for m in pii._CLASS_CARD_RE.finditer(raw)] == [m.span() for m in OLD_CLASS_CARD_RE.finditer(raw)]


# ---------------------------------------------------------------- secrets: providers tried at their literal
def test_provider_offsets():
    offsets = {hint: off for hint, _, _, _, off in secrets._PROVIDERS if off is not None}
    assert offsets == {":AA": (8, 10), "-us": (32, 32)}
    assert secrets._hint_offsets(r"ab\d{2,3}xy", "xy") == (4, 5)
    for pattern in (r"xy\d", r"a+xy", r"(?:a|bc)xy", r"a\d*xy"):
        assert secrets._hint_offsets(pattern, "xy") is None, pattern


@settings(max_examples=500, deadline=None)
@given(pieces(":AA", "-us", "-us1", "123456789", "0123456789abcdef", "0123456789abcdef0123456789abcdef", "AAxy_-",
              "AbCdEfGhIjKlMnOpQrStUvWxYz0123456", glue="0123456789abcdefA:-_ us\n"))
def test_providers_tried_at_their_literal_match_the_scan(text):
    for hint, _, regex, _, offsets in secrets._PROVIDERS:
        if offsets is not None:
            assert [m.span() for m in secrets._provider_matches(text, hint, regex, offsets)] == \
                [m.span() for m in regex.finditer(text)]


# ---------------------------------------------------------------- secrets: values after cue words
def cue_values_reference(text, low, rules):
    """_scan_table's cue-word part before the digit pre-check."""
    out = []
    for cue in secrets.cue_matches(low, rules, Hits.direct(low)):
        stop = text.find("\n", cue.end())
        for n, m in enumerate(secrets._TOKEN_RE.finditer(text, cue.end(), len(text) if stop < 0 else stop)):
            if n >= secrets._CUE_TOKENS or m.start() > cue.end() + secrets.CUE_REACH:
                break
            token = m.group()
            if len(token) < 6 or token.isalpha():
                continue
            between = text[cue.end():m.start()]
            # A blank-separated piece between the cue and the token (blanks on both sides; the
            # cue's own last letter is no blank) that is a word of 5+ letters and ".", "!" or "?".
            if any(0 < w.start() and w.end() < len(between) and re.fullmatch(r"[^\W\d_]{5,}[.!?]", w.group())
                   for w in re.finditer(r"\S+", between)):
                break  # the cue's sentence ended before the token
            value = token.lstrip(":=").rstrip(secrets._VALUE_END)
            if len(value) >= 6 and secrets._value_like(value):
                start = m.start() + len(m.group()) - len(m.group().lstrip(":="))
                out.append((start, start + len(value), "SECRET", 0.8))
                break
    return out


CUE_PIECES = ("password", "Passwort: ", "mot de passe ", "clé ", "the key is ", "token ", "zugang ", "acceso",
              "Tresor. ", "ändern! ", "bzw. ", "Nr. ", "abcde.", "Fertig?\n", "(Tresor). ",
              "abcdefgh", "Abc123xyz", "x9", "²", "٣", "€", " ", "  ", "\n", ",", ";", '"', "'", "`", "&user=",
              "&", "is", "ijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdef", "1", "https://a1b2c3.example")


@settings(max_examples=600, deadline=None)
@given(pieces(*CUE_PIECES, glue="abcxyz0123 :=.-\n"))
def test_cue_values_without_a_digit_in_reach_are_skipped(text):
    low = text.lower()
    if len(low) != len(text):
        return
    rules = compiled()
    keyless = [c for c in secrets._scan_table(text, low, rules) if c[3] == 0.8]
    assert keyless == cue_values_reference(text, low, rules)


def test_maybe_digit_class_holds_every_digit():
    for code in range(0x3000):
        if chr(code).isdigit():
            assert secrets._MAYBE_DIGIT_RE.match(chr(code)), hex(code)


# ---------------------------------------------------------------- term rules: a year within reach
def test_rules_that_end_in_a_year():
    assert _ends_in(r"exclusiv\w*[^.\n]{0,60}?\bbis\s{year}", "{year}")
    assert _ends_in(r"(?:a|b)\s{year}", "{year}")
    assert not _ends_in(r"a|b\s{year}", "{year}")
    assert not _ends_in(r"a\s{year}?", "{year}")
    assert not _ends_in(r"a\s{year}(?:x)?", "{year}")
    assert {"exclusiv", "exklusiv", "sole"} <= compiled().term_years
    assert "%" not in compiled().term_years and "net" not in compiled().term_years


YEAR_PIECES = ("exclusive", "exclusivity", "exklusiv", "exclusief", "esclusiva", "sole distribution", " until ",
               " bis ", " tot ", " fino al ", " até ", " end of ", "the ", "2027", "1999", "2100", "20", "19",
               " ", ".", "\n", "Q3 ", "rights ", "x" * 30)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(YEAR_PIECES), max_size=14).map("".join))
def test_year_gate_keeps_the_term_rules(text):
    low = text.lower()
    for langs in (None, ["de"], ["nl", "pt"]):
        rules = compiled(langs)
        assert sorted(commercial.scan_term_rules(text, low, rules, Hits.direct(low))) == \
            term_rules_reference(text, low, rules)


# ---------------------------------------------------------------- folding: offsets that do not move
@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab1 \u00a0\u202f\uff11\uff20\u200b\u2026", max_size=30),
       st.lists(st.tuples(st.integers(0, 30), st.integers(0, 6)), max_size=6))
def test_one_for_one_folds_map_offsets_to_themselves(text, raw):
    folded = fold(text)
    if folded is None:
        return
    n = len(folded.text)
    cands = [(min(a, n), min(a + b, n), "X", 1.0) for a, b in raw]
    expected = [(folded.orig(c[0]), folded.orig(c[1] - 1) + 1, *c[2:]) for c in cands if c[1] > c[0]]
    assert folded.map_cands(cands) == expected


# ---------------------------------------------------------------- secrets: the word before a value
@settings(max_examples=800, deadline=None)
@given(st.text(alphabet="ab éz9_ .-:#\t", max_size=24), st.sampled_from([frozenset({"ab", "abz", "éz"}), frozenset({"b"})]))
def test_last_words_read_backwards_match_the_forward_search(before, refs):
    plain = re.compile(r"(?:([^\W\d_]+)[ .-]+)?([^\W\d_]+)$")  # as it was
    stripped = before.rstrip(" \t:#=.-")
    m = plain.search(stripped) if stripped else None
    expected = m is not None and (m.group(2) in refs or (m.group(1) is not None and m.group(1) + m.group(2) in refs))
    assert secrets._after_reference(before, 0, len(before), refs) == expected


def value_like_reference(value):
    """secrets._value_like before its ASCII path."""
    if not any(c.isdigit() for c in value) or not any(c.isalpha() for c in value):
        return False
    if secrets._PERIOD_RE.fullmatch(value) or "://" in value or "@" in value:
        return False
    if value[0] in "$<{[%*(" or value.lower() in secrets._KV_STOP:
        return False
    return not (value.replace("-", "").replace(".", "").replace("/", "").isdigit())


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x2200), min_size=1, max_size=12))
def test_value_like_ascii_path(value):
    for v in (value, value.encode("ascii", "replace").decode("ascii")):
        assert secrets._value_like(v) == value_like_reference(v)


# ---------------------------------------------------------------- phones: a header line's digits
def header_cells_reference(line, delim, rules):
    """phones._header_cells on one line as it was (str.isdigit over the line)."""
    if any(c.isdigit() for c in line):
        return ()
    kinds = []
    for cell in line.lower().split(delim):
        words = re.findall(r"[^\W\d_]+", cell)
        joined = "".join(words)
        if len(words) > 4 or len(cell) > 40:
            kinds.append(None)
        elif joined in rules.phone_columns or any(w in rules.phone_columns for w in words):
            kinds.append("p")
        elif joined in rules.anti_columns or any(w in rules.anti_columns for w in words):
            kinds.append("a")
        else:
            kinds.append(None)
    return tuple(kinds) if ("p" in kinds or "a" in kinds) else ()


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(["Telefon", "SKU", "name", ";", "é", "5", "²", "€", "٣", "①", " ", "x"]),
                max_size=12).map("".join))
def test_header_lines_with_a_digit_are_no_headers(line):
    from redaction import phones  # noqa: PLC0415

    rules = compiled()
    assert phones._header_cells(line + "\n1", 0, ";", rules) == header_cells_reference(line, ";", rules)


# ---------------------------------------------------------------- IBAN heads before a number
@settings(max_examples=800, deadline=None)
@given(st.text(alphabet="ABDE XYZ89 0\n-a٣", max_size=50), st.integers(0, 50))
def test_iban_head_searched_from_its_character_run(text, start):
    start = min(start, len(text))
    plain = pii._IBAN_HEAD_RE.search(text, max(0, start - 40), start) is not None
    assert pii.iban_head_before(text, start) == plain
