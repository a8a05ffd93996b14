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
