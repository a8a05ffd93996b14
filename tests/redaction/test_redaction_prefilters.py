"""Each pre-filter and fast path of the detectors keeps the result of the plain
logic it stands in for: positives, tricky negatives, and a property test against
a reference written the plain way (the previous implementation)."""
import bisect
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redaction import TermMatcher, commercial, detect, phones, pii, secrets
from redaction.needles import find_all
from redaction.rules import compiled
from redaction.shadow import classes, classes_and_lower
from redaction.spans import _RANK, _TERM_RANK, resolve_cands


def found(text, type_):
    return [text[s.start:s.end] for s in detect(text) if s.type == type_]


def pieces(*choices):
    """Texts made of detector-relevant fragments, joined by random glue."""
    return st.lists(st.one_of(st.sampled_from(choices), st.text(alphabet="0123456789 -.:=_/()+'\"xA", max_size=6)),
                    max_size=8).map("".join)


# ---------------------------------------------------------------- secrets: key=value stems
KV_FRAGMENTS = ("password", "passwd", "pwd", "secret", "api_key", "api-key", "apikey", "access_key", "secretkey",
                "private-key", "client_secret", "clientsecret", "token", "auth_token", "refresh-token", "key",
                "keyboard", "DB_", "Password", "=", ":", " = ", "'", '"', "hunter22", "S3cr3tValue", "\t")


def kv_reference(text, low):
    """The plain start generation: every word start up to 8 before any stem."""
    starts = set()
    for stem in secrets._KV_STEMS:
        i = low.find(stem)
        while i >= 0:
            starts.update(j for j in range(max(0, i - 8), i + 1) if j == 0 or not low[j - 1].isalnum())
            i = low.find(stem, i + 1)
    out, last = [], -1
    for j in sorted(starts):
        if j >= last:
            m = secrets._KV_RE.match(low, j)
            if m:
                out.append(m.span(3))
                last = m.end()
    return out


@pytest.mark.parametrize("text,value", [
    ("refresh-token: tok123456", "tok123456"),
    ("clientsecret=QWErty123", "QWErty123"),
    ("private_key = x9y8z7w6", "x9y8z7w6"),
    ("DB_PASSWORD='s3cr3t!'", "s3cr3t!"),
    ("my_apikey\t=\tq1w2e3r4", "q1w2e3r4"),
])
def test_kv_keys_at_every_stem_offset(text, value):
    assert found(text, "SECRET") == [value]


@pytest.mark.parametrize("text", ["key features: 12 ports", "token count: 500", "the secret sauce"])
def test_kv_stems_without_a_separator_tail_find_nothing(text):
    assert found(text, "SECRET") == []


@settings(max_examples=400, deadline=None)
@given(pieces(*KV_FRAGMENTS))
def test_kv_fast_starts_match_plain_starts(text):
    low = text.lower()
    assert len(low) == len(text)
    assert [m.span(3) for m in secrets._kv_matches(secrets._KV_RE, low, low)] == kv_reference(text, low)


# ---------------------------------------------------------------- phones: runs inside higher-priority spans
def phones_reference(text, region, blocked):
    """scan_phones without skipping runs: every candidate goes through _phone_at."""
    ends = [c[1] for c in blocked]
    out, last, n = [], -1, len(text)
    for start, end in pii.digit_runs(text):
        for m in phones._PHONE_RE.finditer(text, max(0, start - 4) if start > 4 else 0, min(n, end + 2)):
            if m.end() - m.start() >= 7:
                span = phones._phone_at(text, m, region, blocked, ends)
                if span is not None and span[0] >= last:
                    out.append(span)
                    last = span[1]
    return out


@pytest.mark.parametrize("text,value", [
    ("card 4111 1111 1111 1111 call +44 20 7946 0958", "+44 20 7946 0958"),
    ("IBAN DE89 3704 0044 0532 0130 00 / tel (201) 555-0123", "(201) 555-0123"),
    ("+1 (212) 555-0199 4111111111111111", "+1 (212) 555-0199"),
])
def test_phones_next_to_cards_and_ibans_are_kept(text, value):
    assert found(text, "PHONE_NUMBER") == [value]


NUMBERS = ("+44 20 7946 0958", "(201) 555-0123", "212-555-0199", "+1 415 555 0132", "0044 20 7946 0958", "555 0123",
           "4111 1111 1111 1111", "4111111111111111", "DE89 3704 0044 0532 0130 00", "2024", "+", "(", "tel")


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(NUMBERS), st.sampled_from(["", " ", "  ", "-", ", ", "/", "."])),
                min_size=1, max_size=5),
       st.lists(st.tuples(st.integers(0, 60), st.integers(1, 30)), max_size=2))
def test_run_skip_matches_candidate_by_candidate(parts, raw_blocked):
    text = "".join(number + glue for number, glue in parts)
    # Blocked spans as detect() makes them (cards, IBANs), plus arbitrary ones.
    blocked = pii.scan_ibans(text) + pii.scan_cards(text)
    blocked += [(a, a + w, "SECRET", 1.0) for a, w in raw_blocked if a < len(text)]
    blocked.sort(key=lambda c: c[1])
    for region in ("US", "GB"):
        assert phones.scan_phones(text, region, blocked) == phones_reference(text, region, blocked)


HEADERS = ("phone", "Tel", "sku", "ean", "ref", "name", "notes", "cod_art", "", "x 2")
CELLS = ("0642993341", "705 088 002", "0035656496129", "0737-8686-556", "+44 20 7946 0958", "2024", "Ana", "", "a, b")


@st.composite
def tables(draw):
    """Pasted tables: a header line (or none), rows of cells, stray lines between blocks."""
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        delim = draw(st.sampled_from([";", ",", "|", "\t"]))
        if draw(st.booleans()):
            lines.append(delim.join(draw(st.lists(st.sampled_from(HEADERS), min_size=1, max_size=5))))
        for _ in range(draw(st.integers(0, 4))):
            lines.append(delim.join(draw(st.lists(st.sampled_from(CELLS), min_size=1, max_size=6))))
        lines.append(draw(st.sampled_from(["", "x", "call 0642993341"])))
    return "\n".join(lines)


@settings(max_examples=400, deadline=None)
@given(tables())
def test_table_header_memo_matches_a_fresh_lookup(text):
    # scan_phones memoises table blocks and headers; phones_reference looks each up afresh.
    for region in ("US", "FR"):
        assert phones.scan_phones(text, region, []) == phones_reference(text, region, [])


# ---------------------------------------------------------------- IBAN: only the cut of the country's length
def ibans_reference(text):
    out = []
    for m in pii._IBAN_RE.finditer(text):
        cand = m.group()
        for cut in [len(cand)] + [i for i in range(len(cand) - 1, 14, -1) if cand[i] == " "]:
            if pii.iban_valid(cand[:cut]):
                out.append((m.start(), m.start() + cut, "IBAN_CODE", 1.0))
                break
    return out


@pytest.mark.parametrize("text,value", [
    ("IBAN DE89 3704 0044 0532 0130 00 ABCD EFGH", "DE89 3704 0044 0532 0130 00"),
    ("GB82WEST12345698765432.", "GB82WEST12345698765432"),
    ("pay FR14 2004 1010 0505 0001 3M02 606 now", "FR14 2004 1010 0505 0001 3M02 606"),
])
def test_iban_cut_to_the_country_length(text, value):
    assert found(text, "IBAN_CODE") == [value]


@settings(max_examples=300, deadline=None)
@given(pieces("DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "XX12 3456 7890 1234 5678", "AB", "12",
              " 1234", "ZZ00", "٣"))
def test_iban_scan_matches_every_cut(text):
    assert pii.scan_ibans(text) == ibans_reference(text)


# ---------------------------------------------------------------- currency codes from the class string
def codes_reference(text):
    return [(m.start(), m.end()) for m in commercial._CODE_SCAN_RE.finditer(text)
            if (m.start() == 0 or not text[m.start() - 1].isalpha())
            and (m.end() == len(text) or not text[m.end()].isalpha())]


@pytest.mark.parametrize("text,prices", [
    ("1,200 USD and GBP 45", ["1,200 USD", "GBP 45"]),
    ("USDT 5, ÄUSD 5, EURO 7 and 5 EURx", []),
    ("€5 to €8 or 10-15 USD", ["€5 to €8", "10-15 USD"]),
])
def test_code_boundaries(text, prices):
    assert found(text, "PRICE") == prices


@settings(max_examples=400, deadline=None)
@given(pieces("USD", "EUR", "GBP", "RUBAED", "INRUB", "É", "€", "Ω", "a", "5 ", "USDX"))
def test_class_string_codes_match_the_alternation(text):
    got = [(a, b) for a, b, kind in commercial._markers(text, text.lower(), classes(text)) if kind == "code"]
    assert got == codes_reference(text)


# ---------------------------------------------------------------- prices: range and unit pre-checks
@pytest.mark.parametrize("text,value", [
    ("$10 - $15 each", "$10 - $15 each"), ("$10-15/unit", "$10-15/unit"), ("€5 to €8 per kg", "€5 to €8 per kg"),
    ("$32.50 each", "$32.50 each"), ("$4.20 / unit", "$4.20 / unit"), ("10–15 USD", "10–15 USD"),
])
def test_price_ranges_and_units(text, value):
    assert found(text, "PRICE") == [value]


def test_each_followed_by_a_digit_is_not_a_unit():
    assert found("$5 each5", "PRICE") == ["$5"]


def prices_reference(text):
    """scan_prices' joining and extension without the str pre-checks."""
    merged = []
    for start, end in commercial._price_atoms(text, text.lower()):
        if merged and commercial._RANGE_JOIN_RE.fullmatch(text, merged[-1][1], start):
            merged[-1][1] = end
            continue
        if re.search(r"[-–—]|to", text[max(0, start - 4):start]):
            head = commercial._RANGE_HEAD_RE.search(text, max(0, start - 24), start)
            if head and (head.start() == 0 or not text[head.start() - 1].isalnum()):
                start = head.start()
        merged.append([start, end])
    out = []
    for start, end in merged:
        tail = commercial._RANGE_TAIL_RE.match(text, end)
        end = tail.end() if tail else end
        unit = commercial._PER_UNIT_RE.match(text, end) if commercial._UNIT_HINT_RE.match(text, end) else None
        if unit is None and len(text.lower()) == len(text):
            unit = compiled().price_unit.match(text.lower(), end)  # the per-language phrases
        out.append((start, unit.end() if unit else end, "PRICE", 0.9))
    return out


@settings(max_examples=400, deadline=None)
@given(pieces("$10", "€5", "15", " - ", "-", " to ", "to", "–", " per kg", "/unit", " each", " ea.", "USD", "\n",
              " a ", "t", " l'unité", " pro Stück", " per stuk", " cad.", "/Stk.", " pièce", " €", "3 800,95"))
def test_price_pre_checks_keep_the_result(text):
    assert commercial.scan_prices(text, text.lower()) == prices_reference(text)


# ---------------------------------------------------------------- terms: first-word search
@settings(max_examples=300, deadline=None)
@given(pieces("Acme", "acme industrial", "ACME  Industrial", "Acmeton", "x", "Project", "falcon", "oo bar",
              "bar", " ", "\n", "_", "Müller", "MÜLLER"))
def test_term_heads_match_the_regex_scan(text):
    terms = [("Acme", "SUPPLIER"), ("Acme Industrial", "CUSTOMER"), ("Project Falcon", "CODENAME"),
             ("oo bar", "X"), ("bar", "Y"), ("Müller", "SUPPLIER")]
    fast, plain = TermMatcher(terms), TermMatcher(terms)
    plain._heads = None  # the regex scan, as used for many terms
    assert fast._heads is not None
    assert fast.scan(text) == plain.scan(text)


# ---------------------------------------------------------------- overlap resolution per cluster
def greedy_reference(cands):
    ordered = sorted(cands, key=lambda c: (_RANK.get(c[2], _TERM_RANK), c[0] - c[1], c[0], -c[3]))
    starts, ends, kept = [], [], []
    for cand in ordered:
        if cand[1] <= cand[0]:
            continue
        i = bisect.bisect_right(ends, cand[0])
        if i < len(starts) and starts[i] < cand[1]:
            continue
        starts.insert(i, cand[0])
        ends.insert(i, cand[1])
        kept.insert(i, cand)
    return kept


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(-2, 12),
                          st.sampled_from(["SECRET", "PRICE", "PHONE_NUMBER", "IBAN_CODE", "SUPPLIER", "_LITERAL"]),
                          st.sampled_from([0.8, 0.9, 1.0])), max_size=25))
def test_cluster_resolution_matches_global_greedy(raw):
    cands = [(a, a + w, t, s) for a, w, t, s in raw]
    assert resolve_cands(cands) == greedy_reference(cands)


# ---------------------------------------------------------------- cards, IPv6, lower-casing
def luhn_reference(digits):
    """The Luhn check digit by digit, the plain way the fast path stands in for."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789", max_size=20))
def test_luhn_fast_path_matches_the_loop(digits):
    assert pii.luhn_ok(digits) == luhn_reference(digits)


@pytest.mark.parametrize("first", "0123456789")
def test_card_brand_first_digit_shortcut(first):
    brands = {pii.card_brand_ok(first + rest) for rest in ("011111111111111", "411111111111111", "901234567890123",
                                                            "221111111111111", "528111111111111")}
    if first in "01789":
        assert brands == {False}
    else:
        assert True in brands


@pytest.mark.parametrize("text,ips", [
    ("at 12:30:45 and 2001:db8:0:0:0:0:0:1", ["2001:db8:0:0:0:0:0:1"]),
    ("1:2:3:4:5:6:7 and ::1 and 2001:db8::8a2e:370:7334", ["::1", "2001:db8::8a2e:370:7334"]),
    ("::ffff:10.0.0.1 but not 1:2:3:4:5:6:7:8:9", ["::ffff:10.0.0.1"]),
])
def test_ipv6_part_count_pre_check(text, ips):
    assert found(text, "IP_ADDRESS") == ips


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="aZq09 ?€éÉÀßİKΣσς٣\ud800\U0001f600ǅ.-", max_size=30))
def test_lower_through_utf8_bytes_matches_str_lower(text):
    cls, low = classes_and_lower(text)
    assert low == text.lower()
    assert cls == classes(text)


# ---------------------------------------------------------------- secrets: prefix hints grouped by head
def test_prefix_groups_hold_every_hint_under_its_head():
    grouped = [hint for head, hints in secrets._PREFIX_GROUPS for hint in hints]
    assert sorted(grouped) == sorted(secrets._PREFIX_HINTS)
    assert all(hint.startswith(head) for head, hints in secrets._PREFIX_GROUPS for hint in hints)


@settings(max_examples=400, deadline=None)
@given(pieces(*secrets._PREFIX_HINTS, "sk", "gh", "github", "ghp", "AIz", "x" * 40, "A1b2" * 10, "_", "-"))
def test_grouped_prefix_heads_match_one_find_per_hint(text):
    plain = sorted(i for h in secrets._PREFIX_HINTS for i in find_all(text, h))
    grouped = sorted(i for head, hints in secrets._PREFIX_GROUPS for i in find_all(text, head)
                     if text.startswith(hints, i))
    assert grouped == plain


# ---------------------------------------------------------------- translate tables with identity entries
@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x2200), max_size=20))
def test_full_translate_tables_translate_like_the_sparse_ones(text):
    from redaction import placeholders
    from redaction.shadow import translate_table

    assert placeholders._digit_key(text) == "".join(c for c in text if c.isdigit())
    assert placeholders._iban_key(text) == "".join(c for c in text if c.isalnum()).upper()
    ascii_text = text.encode("ascii", "replace").decode("ascii")
    assert placeholders._digit_key(ascii_text) == "".join(c for c in ascii_text if c.isdigit())
    assert placeholders._iban_key(ascii_text) == "".join(c for c in ascii_text if c.isalnum()).upper()
    assert text.translate(translate_table(str.maketrans("", "", "+ .-/()"))) == text.translate(
        str.maketrans("", "", "+ .-/()"))
    letters = str.maketrans({chr(65 + i): str(10 + i) for i in range(26)})
    assert text.translate(pii._IBAN_LETTERS) == text.translate(letters)


# ---------------------------------------------------------------- digit runs: group-wise extension
@settings(max_examples=1000, deadline=None)
@given(st.binary().map(lambda b: bytes(b"dddsUax"[c % 7] for c in b)))
def test_class_run_regex_matches_the_digit_wise_one(cls):
    plain = re.compile(rb"d(?=[ds]{6})(?:s{0,3}d){6,}")
    assert [m.span() for m in pii._CLASS_RUN_RE.finditer(cls)] == [m.span() for m in plain.finditer(cls)]


# ---------------------------------------------------------------- phones: the cue window
def cue_reference(text, start, rules):
    """The window scan as it was: phone_cue's lookbehind on the whole 40-character window."""
    lo = max(0, start - 40)
    window = text[lo:start].lower()
    last = None
    for m in rules.phone_cue.finditer(window):
        last = m
    if last is None or not phones._GAP_RE.fullmatch(window, last.end()):
        return None
    return rules.phone_cue_kind[last.group("w")]


CUE_PIECES = ("tel", "Tel.", "tel.5", "phone", "telephone", "lot", "order", "art.-nr.", "cod. art.", "direct line",
              "direct", "réf.", "ref", "v", "call me", "Handy", "\n", "\t", "5", "12", " ", "  ", ":", ".", "-", "x",
              "İ", "Σ", "é", "+44 20 7946 0958", "(", "٣")


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(CUE_PIECES), max_size=14).map("".join))
def test_cue_scan_matches_the_plain_window_scan(text):
    cls = classes(text)
    for langs in (None, ["de"], ["fr", "it"]):
        rules = compiled(langs)
        for start in range(len(text) + 1):
            expected = cue_reference(text, start, rules)
            assert phones._cue(text, start, rules, cls) == expected
            assert phones._cue(text, start, rules) == expected


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="AB CDx9 12345\nñ-", max_size=14), st.integers(0, 14), st.integers(0, 14))
def test_iban_head_skips_to_capitals_with_the_same_matches(text, a, b):
    plain = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9])* ?$")  # as it was
    a, b = min(a, len(text)), min(max(a, b), len(text))
    got, expected = pii._IBAN_HEAD_RE.search(text, a, b), plain.search(text, a, b)
    assert (got and got.span()) == (expected and expected.span())


# ---------------------------------------------------------------- folding: the Latin-1 shade check
@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab ?é€’…\u00a0²\u00ad\u200bＡ１") + ["\U0001d7ce", "\U0001f600"]),
               max_size=20))
def test_fold_skips_only_texts_with_nothing_to_fold(text):
    from redaction.folding import FOLD, _FOLDABLE_RE, fold  # noqa: PLC0415

    foldable = [m for m in _FOLDABLE_RE.finditer(text) if ord(m.group()) in FOLD]
    assert (fold(text) is None) == (not foldable)
