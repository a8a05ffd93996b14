"""TermMatcher: case-insensitive, unicode word boundaries, longest match."""
import pytest

from redaction import TermMatcher, detect


def spans(matcher, text):
    return [(text[s.start:s.end], s.type) for s in matcher.find(text)]


def test_word_boundaries_and_case():
    m = TermMatcher([("Acme", "SUPPLIER")])
    assert spans(m, "ACME. Acmeton, acme's and xAcme") == [("ACME", "SUPPLIER"), ("acme", "SUPPLIER")]


def test_longest_term_wins_and_whitespace_runs():
    m = TermMatcher([("Acme", "SUPPLIER"), ("Acme Corp", "CUSTOMER"), ("Project Falcon", "INTERNAL_CODENAME")])
    text = "acme  corp and Acme Corporation and project\nfalcon"
    assert spans(m, text) == [
        ("acme  corp", "CUSTOMER"), ("Acme", "SUPPLIER"), ("project\nfalcon", "INTERNAL_CODENAME")]


def test_unicode_boundaries():
    m = TermMatcher([("Müller", "SUPPLIER"), ("Zürich Labs", "CUSTOMER")])
    assert spans(m, "MÜLLER, zürich labs, Müllerei, éMüller") == [("MÜLLER", "SUPPLIER"), ("zürich labs", "CUSTOMER")]


def test_term_inside_word_after_failed_start():
    m = TermMatcher([("oo bar", "SUPPLIER"), ("bar", "CUSTOMER")])
    assert spans(m, "foo bar") == [("bar", "CUSTOMER")]


def test_special_characters_and_duplicates():
    m = TermMatcher([("C++ Tools", "SUPPLIER"), ("c++ tools", "CUSTOMER"), ("A.B. Co.", "SUPPLIER"), ("  ", "X")])
    assert len(m) == 2
    assert spans(m, "Buy C++ tools from A.B. Co. today") == [("C++ tools", "SUPPLIER"), ("A.B. Co.", "SUPPLIER")]


def test_empty_and_invalid():
    assert TermMatcher([]).find("anything") == [] and TermMatcher.empty().find("x") == []
    assert not TermMatcher.empty()
    with pytest.raises(ValueError) as exc:
        TermMatcher([("Secret Supplier", "supplier")])
    assert "Secret Supplier" not in str(exc.value)


def test_repr_hides_terms():
    m = TermMatcher([("Globex", "SUPPLIER")])
    assert "Globex" not in repr(m) and "1" in repr(m)


def test_many_terms_fast():
    import time
    m = TermMatcher((f"Supplier{i} GmbH", "SUPPLIER") for i in range(5000))
    text = ("We met supplier4242 gmbh and Supplier17 GmbH about pricing. " * 70)[:4096]
    t = time.perf_counter()
    for _ in range(20):
        found = m.find(text)
    assert (time.perf_counter() - t) / 20 < 0.005
    assert {text[s.start:s.end].lower() for s in found} == {"supplier4242 gmbh", "supplier17 gmbh"}


def test_terms_lose_to_email_in_detect():
    text = "write to sales@acme.example or Acme"
    m = TermMatcher([("acme", "SUPPLIER")])
    assert [(s.type, text[s.start:s.end]) for s in detect(text, terms=m)] == [
        ("EMAIL_ADDRESS", "sales@acme.example"), ("SUPPLIER", "Acme")]


# ---------------------------------------------------------------- first words found by the keyword scan
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from redaction.detect import _keywords, _keywords_and_heads  # noqa: E402
from redaction.needles import Hits, NeedleIndex  # noqa: E402
from redaction.rules import compiled  # noqa: E402

TERM_WORDS = st.text(alphabet="acmé\u0141\u00dfk-. ", min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(TERM_WORDS, st.sampled_from(["SUPPLIER", "CUSTOMER"])), min_size=1, max_size=6),
       st.text(alphabet="acmé\u0141\u00dfk-. \nACM\u0130x", max_size=80))
def test_terms_from_the_keyword_scan_match_their_own_scan(terms, text):
    # The heads found by a shared scan (the detectors' index with the heads, one without
    # them, none at all: str.find) give the same spans as TermMatcher's own passes.
    matcher = TermMatcher(terms)
    low = text.lower()
    plain = matcher.scan(text, low=low)
    assert matcher.scan(text) == plain
    if matcher.heads is not None:
        rules = compiled()
        for index in (_keywords_and_heads(rules, matcher.heads), _keywords(rules), NeedleIndex(matcher.heads)):
            assert matcher.scan(text, low=low, hits=index.scan(low)) == plain
        assert matcher.scan(text, low=low, hits=Hits.direct(low)) == plain


def test_heads_join_the_keyword_scan_unless_it_would_lose_its_filter():
    rules = compiled()
    assert _keywords_and_heads(rules, ("acme", "globex")).filtered
    assert {"acme", "globex"} <= _keywords_and_heads(rules, ("acme", "globex")).needles
    assert _keywords_and_heads(rules, ("\u0142\u00f3d\u017a",)) is _keywords(rules)  # beyond Latin-1: its own passes
    matcher = TermMatcher([("Łódź Trading", "SUPPLIER"), ("Acme", "SUPPLIER")])
    assert spans(matcher, "ŁÓDŹ trading and acme") == [("ŁÓDŹ trading", "SUPPLIER"), ("acme", "SUPPLIER")]
    assert [(s.start, s.end, s.type) for s in detect("ŁÓDŹ trading and acme", terms=matcher)] == [
        (0, 12, "SUPPLIER"), (17, 21, "SUPPLIER")]
