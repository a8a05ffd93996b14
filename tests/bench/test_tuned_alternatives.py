"""bench/tuned_alternatives.py: which configurations the benchmark sets against tune's choice,
and how the target is read from the cells it measured."""
from bench import compare_bench, tuned_alternatives as tuned


def _config(engine, threads, slots, n_batch=256):
    return {"SLUICE_ENGINE": engine, "SLUICE_N_THREADS": threads, "SLUICE_SLOTS": slots, "SLUICE_N_BATCH": n_batch}


def _row(config, aggregate):
    return {"config": config, "aggregate_tokens_per_second": {str(k): v for k, v in aggregate.items()}}


TUNING = {
    "rows": [
        _row(_config("batched", 2, 4), {1: 60.0, 2: 70.0, 4: 75.0}),
        _row(_config("contexts", 1, 2), {1: 35.0, 2: 66.0}),  # 2 slots: its figure at 4 is the one at 2
        _row(_config("batched", 1, 4), {1: 33.0, 2: 50.0, 4: 58.0}),
        _row(_config("batched", 2, 1), {1: 61.0}),
    ],
    # The finalists were measured again: the best run of a configuration counts.
    "finalist_rows": [_row(_config("contexts", 1, 2), {1: 36.0, 2: 80.0})],
    # Long prompts: its figures are not comparable with the grid's, so they rank nothing.
    "n_batch_rows": [_row(_config("batched", 2, 4, 512), {1: 59.0, 4: 99.0})],
}


def test_alternatives_are_the_others_tune_ranked_highest_at_the_level():
    chosen = _config("batched", 2, 4)
    picked = tuned.alternatives(TUNING, chosen, level=4, count=2)
    # One slot: its figure at 4 streams is its lone stream's (the other three wait in its queue).
    assert [p["values"] for p in picked] == [_config("contexts", 1, 2), _config("batched", 2, 1)]
    assert [p["tune_aggregate"] for p in picked] == [80.0, 61.0]
    # The chosen one is never its own alternative, even when the settings carry strings.
    as_strings = {name: str(value) for name, value in chosen.items()}
    assert all(p["values"] != chosen for p in tuned.alternatives(TUNING, as_strings, level=4, count=9))
    assert len(tuned.alternatives(TUNING, chosen, level=4, count=9)) == 3  # every other grid row, once


def test_summary_compares_medians_measured_in_the_run_not_tunes_figures():
    chosen = _config("batched", 2, 4)
    name, other = tuned.label(chosen), tuned.label(_config("contexts", 1, 2))
    cells = [{"config": name, "aggregate_tokens_per_second": v} for v in (50.0, 52.0, 51.0)]
    cells += [{"config": other, "aggregate_tokens_per_second": v} for v in (56.0, 54.0, 55.0, None)]
    summary = tuned.summarize(cells, chosen, TUNING, level=4)
    assert summary["best_measured"] == other
    assert summary["ratio"] == round(51.0 / 55.0, 3)
    assert summary["met"] is False
    assert summary["configs"][name] == {"aggregate_median": 51.0, "cells": 3, "tune_recorded": 75.0, "chosen": True}
    assert summary["configs"][other]["tune_recorded"] == 80.0
    assert summary["tune_best_by_its_figures"] == other

    close = [{"config": other, "aggregate_tokens_per_second": 52.0}] + cells[:3]
    assert tuned.summarize(close, chosen, TUNING, level=4)["met"] is True  # 51 / 52 >= 0.95


def test_the_target_appears_only_when_the_phase_measured_the_chosen_one():
    chosen = _config("batched", 2, 4)
    cells = [{"config": tuned.label(chosen), "aggregate_tokens_per_second": 50.0}]
    summary = tuned.summarize(cells, chosen, TUNING, level=4)
    targets = compare_bench.evaluate_targets([], tuned=summary)
    (name, value), = targets.items()
    assert name.startswith("aggregate at 4 streams >= 0.95x the best configuration tune found")
    assert value["ratio"] == 1.0 and value["met"] is True
    assert compare_bench.evaluate_targets([], tuned={"note": "skipped"}) == {}
