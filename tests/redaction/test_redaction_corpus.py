"""Labelled corpus: label consistency, then per-type precision/recall >= 0.95.

Match rule: same type and exact (start, end) boundaries.
"""
import ipaddress
from pathlib import Path

import phonenumbers
import pytest

from redaction import TermMatcher, detect
from tests.redaction.evaluation import evaluate, load_corpus
from redaction.pii import iban_valid, luhn_ok

CORPUS = Path(__file__).resolve().parents[1] / "data" / "redaction_corpus.jsonl"
RECORDS = load_corpus(CORPUS)


def test_corpus_size_and_ids():
    assert len(RECORDS) >= 150
    assert len({r["id"] for r in RECORDS}) == len(RECORDS)
    assert sum(1 for r in RECORDS if not r["spans"]) >= 30  # hard negatives


@pytest.mark.parametrize("rec", RECORDS, ids=lambda r: r["id"])
def test_labels_consistent(rec):
    text, prev_end = rec["text"], 0
    for span in rec["spans"]:
        value = text[span["start"]:span["end"]]
        assert 0 <= span["start"] < span["end"] <= len(text) and span["start"] >= prev_end
        assert value == value.strip() and value
        prev_end = span["end"]
        kind = span["type"]
        if kind == "CREDIT_CARD":
            assert luhn_ok("".join(c for c in value if c.isdigit()))
        elif kind == "IBAN_CODE":
            assert iban_valid(value)
        elif kind == "EMAIL_ADDRESS":
            assert value.count("@") == 1 and "." in value.split("@")[1]
        elif kind == "IP_ADDRESS":
            ipaddress.ip_address(value)
        elif kind == "PHONE_NUMBER":
            assert phonenumbers.is_valid_number(phonenumbers.parse(value, "US"))
        elif kind == "URL_CREDENTIALS":
            assert ":" in value and text[span["end"]] == "@"
        elif kind in ("SUPPLIER", "CUSTOMER", "INTERNAL_CODENAME"):
            assert any(value.lower() == t.lower() and ty == kind for t, ty in rec["terms"])


def _predict(rec):
    return detect(rec["text"], terms=TermMatcher([tuple(t) for t in rec.get("terms", [])]))


def test_precision_recall_per_type():
    report = evaluate(RECORDS, _predict, rule="exact")
    low = {t: (round(s.precision, 3), round(s.recall, 3)) for t, s in report.scores.items()
           if s.precision < 0.95 or s.recall < 0.95}
    assert not low, f"types below 0.95 precision/recall: {low}"
    expected = {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "URL_CREDENTIALS",
                "SECRET", "PRICE", "COMMERCIAL_TERM", "SUPPLIER", "CUSTOMER", "INTERNAL_CODENAME"}
    assert expected <= set(report.scores)


def test_hard_negatives_stay_clean():
    negatives = [r for r in RECORDS if r["id"].startswith("negative")]
    noisy = [r["id"] for r in negatives if _predict(r)]
    assert not noisy, noisy


def test_corpus_file_matches_generator():
    import importlib.util
    path = CORPUS.with_name("make_redaction_corpus.py")
    spec = importlib.util.spec_from_file_location("make_redaction_corpus", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == RECORDS, "regenerate: python tests/data/make_redaction_corpus.py"
