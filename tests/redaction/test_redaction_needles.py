"""The one-scan keyword index (needles.py) and the trie-shaped word regexes give what the
str.find passes and longest-first alternations they replace gave."""
import json
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from redaction import commercial, secrets
from redaction.detect import _keywords
from redaction.needles import Hits, NeedleIndex, find_all, trie_pattern
from redaction.rules import LANGUAGES, PHONE_ANTI_CUES, PHONE_CUES, SECRET_CUES, compiled

DATA = Path(__file__).resolve().parents[1] / "data"
WORDS = st.text(alphabet="abc.é% -", min_size=1, max_size=5)


def alternation(words):
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True)) or "(?!)"


def corpus_texts():
    out = []
    for name in ("redaction_corpus.jsonl", "redaction_eval_dev.jsonl"):
        with open(DATA / name, encoding="utf-8") as fh:
            out += [json.loads(line)["text"] for line in fh if line.strip()]
    return out


@settings(max_examples=300, deadline=None)
@given(st.sets(WORDS, max_size=12), st.sets(WORDS, max_size=6), st.text(alphabet="abc.é% -x\n", max_size=60))
def test_trie_matches_like_longest_first_alternation(cues, anti, text):
    shape = r"(?<![\w.])(?:(?P<p>{})|(?P<a>{}))(?![\w])"
    plain = re.compile(shape.format(alternation(cues), alternation(anti)))
    trie = re.compile(shape.format(trie_pattern(cues), trie_pattern(anti)))
    assert [(m.span(), m.lastgroup) for m in trie.finditer(text)] == [(m.span(), m.lastgroup) for m in plain.finditer(text)]


def test_trie_of_the_rule_tables():
    texts = [t.lower() for t in corpus_texts()]
    for table in (PHONE_CUES, PHONE_ANTI_CUES, SECRET_CUES):
        for langs in ([lang] for lang in LANGUAGES):
            words = {w for lang in langs for w in table[lang]}
            plain = re.compile(rf"(?<![\w.])(?:{alternation(words)})(?![\w])")
            trie = re.compile(rf"(?<![\w.])(?:{trie_pattern(words)})(?![\w])")
            for text in texts:
                assert [m.span() for m in trie.finditer(text)] == [m.span() for m in plain.finditer(text)]


@settings(max_examples=300, deadline=None)
@given(st.sets(WORDS, min_size=1, max_size=12), st.text(alphabet="abc.é% -x", max_size=80))
def test_index_finds_every_occurrence(needles, text):
    hits = NeedleIndex(needles).scan(text)
    for needle in needles | {"ab", "zz", "a"}:
        assert hits.positions(needle) == find_all(text, needle)
        assert (needle in hits) == (needle in text)
        direct = Hits.direct(text)
        assert direct.positions(needle) == find_all(text, needle) and (needle in direct) == (needle in text)


def test_index_of_the_detectors_keywords_on_the_corpora():
    for langs in (None, ["de"], ["fr", "it"]):
        rules = compiled(langs)
        index = _keywords(rules)
        needles = [h for h, _ in rules.terms] + list(rules.secret_stems) + list(secrets.LOW_NEEDLES) + list(
            commercial.LOW_NEEDLES)
        assert set(needles) <= index.needles
        for text in corpus_texts():
            low = text.lower()
            hits = index.scan(low)
            for needle in needles:
                assert hits.positions(needle) == find_all(low, needle)


def test_reprs_show_sizes_only():
    hits = NeedleIndex(["secret"]).scan("my secret is hunter2")
    assert "hunter2" not in repr(hits) and "secret" not in repr(hits)
    assert "secret" not in repr(NeedleIndex(["secret"]))


def test_first_characters_of_patterns():
    from redaction.rules import _first_chars  # noqa: PLC0415

    assert _first_chars(r"\bnet[\s-]?\d") == "[n]"
    assert _first_chars(r"(?:a|b?c)x") == "[abc]"
    assert _first_chars(r"\d{0,2}%") is not None and re.fullmatch(_first_chars(r"\d{0,2}%"), "%")
    assert _first_chars(r"x?") is None  # can match the empty string: any start
    assert _first_chars(r"[^a]b") is None and _first_chars(r"(?i:a)") is None and _first_chars(r".a") is None


def test_term_word_starts_keep_every_start_that_matches():
    """Every word start near a keyword at which the keyword's rules match is one the
    narrowed word-start regex reports (it only drops starts that cannot match)."""
    from redaction.rules import WORD_START_RE  # noqa: PLC0415

    texts = [t.lower() for t in corpus_texts()]
    for langs in (None, ["nl"], ["de", "it"]):
        rules = compiled(langs)
        for hint, regex in rules.terms:
            narrowed = rules.term_starts[hint]
            for low in texts:
                for i in find_all(low, hint):
                    lo, hi = max(0, i - 40), min(len(low), i + len(hint) + 160)
                    matching = [w.start() for w in WORD_START_RE.finditer(low, lo, i + 1) if regex.match(low, w.start(), hi)]
                    kept = {w.start() for w in narrowed.finditer(low, lo, i + 1)}
                    assert set(matching) <= kept, hint


def test_literal_heads_of_patterns():
    from redaction.rules import _keyword_heads, _literal_heads  # noqa: PLC0415

    assert _literal_heads(r"\bnet[\s-]?\d") == ["net"]
    assert sorted(_literal_heads(r"\b(?:(?:rebate|margin)\s\d|(?:deposit)x)")) == ["depositx", "margin", "rebate"]
    assert _literal_heads(r"(?<![\d.])ab\d") == ["ab"]
    for pattern in (r"x?y", r"[ab]c", r"(?i:ab)", r"(?i)ab", r"\w*marge", r"(?:ab|)c", r"\d{1,3}%", r"(ab"):
        assert _literal_heads(pattern) is None, pattern
    assert _keyword_heads(r"(?:exclusive|exclusivity)\s", ["exclusiv", "ex", "x"]) == ("exclusiv",)
    assert _keyword_heads(r"(?:pagamento)\s", ["pago"]) is None


def term_rules_reference(text, low, rules):
    """scan_term_rules trying every word start near each keyword (no heads)."""
    out, n = [], len(low)
    for hint, regex in rules.terms:
        occurrences = find_all(low, hint)
        reach = 10 if hint == "%" else commercial._TERM_REACH
        k, last = 0, 0
        while k < len(occurrences):
            i = occurrences[k]
            m = None
            for w in rules.term_starts[hint].finditer(low, max(i - reach, last), i + 1):
                m = regex.match(low, w.start(), min(n, i + len(hint) + 160))
                if m is not None and m.end() > i:
                    break
                m = None
            if m is not None:
                if commercial._free(text, m.start()):
                    out.append((m.start(), m.end(), "COMMERCIAL_TERM", 0.85))
                last = m.end()
                while k < len(occurrences) and occurrences[k] < last:
                    k += 1
                continue
            k += 1
    return sorted(out)


TERM_PIECES = ("rebate", "discount", "margin", "mark-up", "commission", "remise", "escompte", "sconto", "premio",
               "net", "net 30", "payment", "deposit", "moq", "mindest", "exklusiv", "pago", " of ", " de ", " ",
               "12%", "5 %", "30", ": ", "bis ", "2027", "x", "-", "Rebate", "Marge", "e")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TERM_PIECES), max_size=12).map("".join))
def test_term_heads_keep_the_word_start_scan(text):
    low = text.lower()
    for langs in (None, ["de"], ["fr", "it"]):
        rules = compiled(langs)
        assert sorted(commercial.scan_term_rules(text, low, rules, _keywords(rules).scan(low))) == \
            term_rules_reference(text, low, rules)


def test_term_heads_on_the_corpora():
    rules = compiled()
    for text in corpus_texts():
        low = text.lower()
        assert sorted(commercial.scan_term_rules(text, low, rules, _keywords(rules).scan(low))) == \
            term_rules_reference(text, low, rules)


# ---------------------------------------------------------------- the start filter of NeedleIndex.scan
def trie_search_scan(index, hay):
    """The scan before the start filter: the trie searched again from each hit's next position."""
    found = {}
    m = index._search(hay)
    while m is not None:
        for w in index._at[m.group()]:
            found.setdefault(w, []).append(m.start())
        m = index._search(hay, m.start() + 1)
    return found


WIDE = "abcdeé%-_:.sxkyz \n\u00a0\u0141\u03a3\u03c2\U0001f600\u0130\ud8000123?"


@settings(max_examples=400, deadline=None)
@given(st.sets(st.text(alphabet=WIDE + "fghijlmnopqrtuvw!", min_size=1, max_size=5), min_size=1, max_size=40),
       st.text(alphabet=WIDE, max_size=80))
def test_start_filter_keeps_every_occurrence(needles, text):
    # Up to 40 needles over 40 characters: classes shared past the 31st, needles beyond Latin-1
    # (no filter), characters beyond Latin-1, astral ones and lone surrogates in the text.
    index = NeedleIndex(needles)
    assert index.scan(text)._found == trie_search_scan(index, text)
    for needle in needles:
        assert index.scan(text).positions(needle) == find_all(text, needle)


def test_start_filter_of_the_detectors_keywords():
    texts = corpus_texts()
    for langs in (None, ["de"], ["fr", "it"], ["pt", "nl", "es"]):
        index = _keywords(compiled(langs))
        assert index._filter is not None  # every keyword's first three characters are Latin-1
        for text in texts:
            for hay in (text, text.lower(), text.upper()):
                assert index.scan(hay)._found == trie_search_scan(index, hay)
