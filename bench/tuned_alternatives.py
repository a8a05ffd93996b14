"""The configuration `manage.py tune` chose against the ones it ranked highest, all served
and measured alike in one run (compare_bench's "tuned" phase).

`tune` keeps each configuration's best run of short streams; the benchmark takes medians of
longer ones, on another minute's machine. Its figures and the tuning file's are therefore
not comparable, and the target "aggregate at 4 streams >= 0.95x the best configuration tune
found" is measured here instead: each alternative runs in its own `manage.py serve`, the
same prompts' kind, tokens and streams as the chosen one, interleaved round by round.
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable

TUNED = ("SLUICE_ENGINE", "SLUICE_N_THREADS", "SLUICE_SLOTS", "SLUICE_N_BATCH")


def label(values: dict) -> str:
    return (f"{values['SLUICE_ENGINE']} threads={values['SLUICE_N_THREADS']} slots={values['SLUICE_SLOTS']} "
            f"n_batch={values['SLUICE_N_BATCH']}")


def _key(values: dict) -> tuple:
    return tuple(str(values[name]) for name in TUNED)


def ranked(tuning: dict, level: int) -> list[tuple[dict, float]]:
    """Every configuration in the tuning file with its best aggregate tokens/s at `level`
    streams (at its slot count when it has fewer slots: the rest wait in its queue), highest
    first; the grid's and the finalists' runs taken together. The n_batch pass is left out:
    it measured long prompts, so its figures rank nothing against these."""
    best: dict[tuple, tuple[dict, float]] = {}
    for row in [*tuning.get("rows", []), *tuning.get("finalist_rows", [])]:
        values = row["config"]
        figures = {int(k): v for k, v in (row.get("aggregate_tokens_per_second") or {}).items()}
        figure = figures.get(min(level, int(values["SLUICE_SLOTS"])))
        if figure is not None and figure > best.get(_key(values), (None, -1.0))[1]:
            best[_key(values)] = (dict(values), figure)
    return sorted(best.values(), key=lambda item: item[1], reverse=True)


def alternatives(tuning: dict, chosen: dict, level: int, count: int) -> list[dict]:
    """The `count` configurations other than `chosen` that tune ranked highest at `level`,
    each with the figure tune recorded for it."""
    return [{"values": values, "tune_aggregate": figure}
            for values, figure in ranked(tuning, level) if _key(values) != _key(chosen)][:count]


def summarize(cells: Iterable[dict], chosen: dict, tuning: dict, level: int) -> dict:
    """Per configuration the median aggregate over its cells, and the target: the chosen
    one's median against the best median measured here."""
    by: dict[str, list[float]] = {}
    for cell in cells:
        if cell["aggregate_tokens_per_second"]:
            by.setdefault(cell["config"], []).append(cell["aggregate_tokens_per_second"])
    medians = {name: round(statistics.median(found), 2) for name, found in by.items()}
    tune_figures = {label(values): figure for values, figure in ranked(tuning, level)}
    chosen_label = label(chosen)
    summary = {
        "level": level,
        "configs": {name: {"aggregate_median": medians[name], "cells": len(by[name]),
                           "tune_recorded": tune_figures.get(name), "chosen": name == chosen_label}
                    for name in medians},
        "tune_best_by_its_figures": next(iter(tune_figures), None),
    }
    if chosen_label in medians and medians:
        best_name = max(medians, key=medians.get)
        ratio = round(medians[chosen_label] / medians[best_name], 3) if medians[best_name] else None
        summary.update(best_measured=best_name, chosen=chosen_label, ratio=ratio,
                       met=None if ratio is None else ratio >= 0.95)
    return summary
