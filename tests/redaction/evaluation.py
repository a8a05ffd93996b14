"""Corpus scoring for the redaction tests and reports: load a labelled corpus, score
detections per type, and print the per-type tables docs/redaction.md shows.

Match rule "exact": same type and identical (start, end). Rule "overlap": same type
and any character overlap (each gold span matched at most once).

Run ``python -m tests.redaction.evaluation`` from the repository root for the tables
of both halves of the multilingual corpus, first as made (dev, test) and then with its
extension (dev+ext, test+ext: tests/data/README.md); ``--cell de:SECRET`` adds one type
in one language on every half; ``--misses`` lists the dev halves' misses, then their spans
found with other bounds (a value cut short still leaks its rest); the test halves' are
never printed: tune on dev.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

DATA = Path(__file__).resolve().parents[1] / "data"
EVAL_DEV, EVAL_TEST = DATA / "redaction_eval_dev.jsonl", DATA / "redaction_eval_test.jsonl"
# More records of each half (same phrase tables, other seeds), made in session 10.
EVAL_DEV_EXT, EVAL_TEST_EXT = DATA / "redaction_eval_dev_ext.jsonl", DATA / "redaction_eval_test_ext.jsonl"
REGRESSION = DATA / "redaction_corpus.jsonl"


@dataclass
class TypeScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class Report:
    scores: dict[str, TypeScore] = field(default_factory=dict)
    misses: list[tuple[str, str, str, int, int]] = field(default_factory=list)  # (record id, "fp"/"fn", type, start, end)

    def score(self, type_: str) -> TypeScore:
        return self.scores.setdefault(type_, TypeScore())

    def micro(self) -> TypeScore:
        total = TypeScore()
        for s in self.scores.values():
            total.tp, total.fp, total.fn = total.tp + s.tp, total.fp + s.fp, total.fn + s.fn
        return total


def load_corpus(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _match(gold: dict, pred, rule: str) -> bool:
    if gold["type"] != pred.type:
        return False
    if rule == "exact":
        return gold["start"] == pred.start and gold["end"] == pred.end
    return gold["start"] < pred.end and pred.start < gold["end"]


def evaluate(records: Iterable[dict], predict: Callable[[dict], Sequence], rule: str = "exact") -> Report:
    """Score ``predict(record)`` (spans with start, end, type) against each record's gold ``spans``."""
    report = Report()
    for rec in records:
        preds = list(predict(rec))
        used: set[int] = set()
        for gold in rec["spans"]:
            hit = next((i for i, p in enumerate(preds) if i not in used and _match(gold, p, rule)), None)
            if hit is None:
                report.score(gold["type"]).fn += 1
                report.misses.append((rec["id"], "fn", gold["type"], gold["start"], gold["end"]))
            else:
                used.add(hit)
                report.score(gold["type"]).tp += 1
        for i, p in enumerate(preds):
            if i not in used:
                report.score(p.type).fp += 1
                report.misses.append((rec["id"], "fp", p.type, p.start, p.end))
    return report


def predict_builtin(rec: dict):
    from redaction import detect

    return detect(rec["text"])


def markdown_table(reports: dict[str, Report]) -> str:
    """One row per type: P and R (and gold count) for each named report."""
    types = sorted({t for r in reports.values() for t in r.scores})
    head = "| type | " + " | ".join(f"{name} P | {name} R | {name} gold" for name in reports) + " |"
    rows = [head, "|" + " --- |" * (1 + 3 * len(reports))]
    for type_ in types + ["all (micro)"]:
        cells = []
        for report in reports.values():
            s = report.micro() if type_ == "all (micro)" else report.scores.get(type_, TypeScore())
            cells += [f"{s.precision:.3f}", f"{s.recall:.3f}", str(s.tp + s.fn)]
        rows.append(f"| {type_} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _by_language(halves: dict[str, list[dict]], test_names: list[str]) -> None:
    for lang in sorted({r["lang"] for recs in halves.values() for r in recs}):
        by_lang = {h: evaluate([r for r in recs if r["lang"] == lang], predict_builtin, "overlap")
                   for h, recs in halves.items()}
        print(f"  {lang}: " + "  ".join(f"{h} P {rep.micro().precision:.3f} R {rep.micro().recall:.3f}"
                                      for h, rep in by_lang.items()))
        for name in test_names:
            low = [f"{t} P {s.precision:.3f} R {s.recall:.3f} ({s.tp + s.fn} gold, {s.fp} fp)"
                   for t, s in sorted(by_lang[name].scores.items()) if min(s.precision, s.recall) < 0.95]
            print(f"      types under 0.95 ({name}): " + (", ".join(low) or "none"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--misses", action="store_true", help="print the dev halves' misses and other bounds")
    ap.add_argument("--cell", action="append", default=[], metavar="LANG:TYPE",
                    help="one type in one language on every half (repeatable)")
    args = ap.parse_args()
    dev, test = load_corpus(EVAL_DEV), load_corpus(EVAL_TEST)
    dev_ext, test_ext = dev + load_corpus(EVAL_DEV_EXT), test + load_corpus(EVAL_TEST_EXT)
    first = {"dev": dev, "test": test}
    extended = {"dev+ext": dev_ext, "test+ext": test_ext}
    reports = {name: evaluate(recs, predict_builtin, "overlap") for name, recs in {**first, **extended}.items()}
    print(f"multilingual corpus, span overlap: dev {len(dev)} records, test {len(test)} records\n")
    print(markdown_table({name: reports[name] for name in first}))
    _by_language(first, ["test"])
    print(f"\nwith its extension: dev+ext {len(dev_ext)} records, test+ext {len(test_ext)} records\n")
    print(markdown_table({name: reports[name] for name in extended}))
    _by_language(extended, ["test+ext"])
    for cell in args.cell:
        lang, type_ = cell.split(":")
        for name, recs in {**first, **extended}.items():
            s = evaluate([r for r in recs if r["lang"] == lang], predict_builtin, "overlap").score(type_)
            print(f"  {lang} {type_} {name}: P {s.precision:.3f} R {s.recall:.3f} "
                  f"(tp {s.tp}, fp {s.fp}, fn {s.fn})")
    if args.misses:
        for half, report in (("dev", reports["dev"]), ("dev+ext", reports["dev+ext"])):
            recs = first["dev"] if half == "dev" else extended["dev+ext"]
            texts = {r["id"]: r["text"] for r in recs}
            for rid, kind, type_, start, end in report.misses:
                if half == "dev+ext" and not rid.startswith("dev-x"):
                    continue  # printed with the dev half
                text = texts[rid]
                print(f"{kind} {type_:16} {rid:26} {text[start:end]!r}  <<{text[max(0, start - 30):end + 15]!r}>>")
        for rec in dev_ext:  # found by overlap, with other bounds than the label's
            preds = predict_builtin(rec)
            for gold in rec["spans"]:
                got = next((p for p in preds if _match(gold, p, "overlap")), None)
                if got is not None and (got.start, got.end) != (gold["start"], gold["end"]):
                    text = rec["text"]
                    print(f"bounds {gold['type']:13} {rec['id']:26} {text[gold['start']:gold['end']]!r}"
                          f" -> {text[got.start:got.end]!r}")


if __name__ == "__main__":
    main()
