"""Corpus scoring shared by the tests and the benchmark.

Match rule "exact": same type and identical (start, end). Rule "overlap": same
type and any character overlap (each gold span matched at most once).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .spans import Span


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
    misses: list[tuple[str, str, int, int]] = field(default_factory=list)  # (record id, "fp"/"fn", start, end)

    def score(self, type_: str) -> TypeScore:
        return self.scores.setdefault(type_, TypeScore())


def load_corpus(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _match(gold: dict, pred: Span, rule: str) -> bool:
    if gold["type"] != pred.type:
        return False
    if rule == "exact":
        return gold["start"] == pred.start and gold["end"] == pred.end
    return gold["start"] < pred.end and pred.start < gold["end"]


def evaluate(
    records: Iterable[dict],
    predict: Callable[[dict], Sequence[Span]],
    rule: str = "exact",
) -> Report:
    """Score ``predict(record)`` against each record's gold ``spans``."""
    report = Report()
    for rec in records:
        preds = list(predict(rec))
        used: set[int] = set()
        for gold in rec["spans"]:
            hit = next((i for i, p in enumerate(preds) if i not in used and _match(gold, p, rule)), None)
            if hit is None:
                report.score(gold["type"]).fn += 1
                report.misses.append((rec["id"], "fn", gold["start"], gold["end"]))
            else:
                used.add(hit)
                report.score(gold["type"]).tp += 1
        for i, p in enumerate(preds):
            if i not in used:
                report.score(p.type).fp += 1
                report.misses.append((rec["id"], "fp", p.start, p.end))
    return report
