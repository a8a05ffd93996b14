"""The pure computations of bench/compare_bench.py: percentiles, rows, ratios, targets, table."""
import time

import pytest

from bench import compare_bench as bench


def test_percentile_interpolates_between_closest_ranks():
    assert bench.percentile([5, 1, 4, 2, 3], 0.5) == 3
    assert bench.percentile([1, 2, 3, 4, 5], 0.95) == pytest.approx(4.8)
    assert bench.percentile([1, 2, 3, 4, 5], 0) == 1
    assert bench.percentile([1, 2, 3, 4, 5], 1) == 5
    assert bench.percentile([7], 0.95) == 7
    assert bench.percentile([], 0.5) is None


def test_thread_candidates():
    assert bench.thread_candidates(1) == [1]
    assert bench.thread_candidates(2) == [1, 2]
    assert bench.thread_candidates(8) == list(range(1, 9))
    assert bench.thread_candidates(16) == [1, 2, 4, 8, 12, 15, 16]


def test_prompts_start_with_a_word_none_of_the_previous_99_had():
    firsts = [bench.prompt_for(i).split()[0] for i in range(500)]
    for i in range(len(firsts)):
        assert firsts[i] not in firsts[max(0, i - 99):i]
    assert len({bench.prompt_for(i) for i in range(500)}) == 500


def test_stream_metrics():
    record = {"ok": True, "sent": 10.0, "first": 10.1, "last": 11.1, "tokens": 11}
    assert bench.stream_metrics(record) == {"first_token_ms": pytest.approx(100), "tokens_per_second": pytest.approx(10)}
    assert bench.stream_metrics({**record, "tokens": 1}) == {"first_token_ms": pytest.approx(100),
                                                             "tokens_per_second": None}
    assert bench.stream_metrics({**record, "ok": False}) == {"first_token_ms": None, "tokens_per_second": None}


def _data(side_rates: dict, first_ms: dict):
    """Streams and cells: side -> {streams: per-stream rate}, every stream of a cell alike;
    aggregate = rate x streams."""
    streams, cells = [], []
    for side, by_level in side_rates.items():
        for level, rate in by_level.items():
            for round_number in range(2):
                cells.append({"side": side, "streams": level, "aggregate_tokens_per_second": rate * level})
                for _ in range(level):
                    streams.append({"side": side, "streams": level, "ok": True, "tokens_per_second": rate,
                                    "first_token_ms": first_ms[side] * level})
    return streams, cells


def test_rows_ratios_and_targets():
    rates = {
        "floor": {1: 40.0, 4: 12.0},
        "llama_cpp_server": {1: 38.0, 4: 9.5},
        "sluice_sse": {1: 39.6, 4: 17.0},
        "sluice_v1": {1: 38.0, 4: 17.0},
    }
    first = {"floor": 50.0, "llama_cpp_server": 60.0, "sluice_sse": 53.0, "sluice_v1": 58.0}
    streams, cells = _data(rates, first)
    streams.append({"side": "sluice_v1", "streams": 4, "ok": False, "tokens_per_second": None, "first_token_ms": None})
    rows = bench.add_ratios(bench.summarize_rows(streams, cells, levels=(1, 4)))
    by = {(r["side"], r["streams"]): r for r in rows}

    sse = by[("sluice_sse", 1)]
    assert sse["tokens_per_second_per_stream"] == 39.6
    assert sse["first_token_ms_p50"] == 53.0
    assert sse["vs_floor"]["tokens_per_second_per_stream"] == 0.99
    assert sse["vs_floor"]["first_token_ms_p50_delta"] == 3.0
    assert sse["vs_llama_cpp_server"]["first_token_ms_p50_delta"] == -7.0
    assert by[("floor", 1)]["vs_floor"] is None
    assert by[("sluice_v1", 4)]["errors"] == 1
    assert by[("sluice_v1", 4)]["streams_measured"] == 8
    assert by[("sluice_sse", 4)]["aggregate_vs_one_stream"] == pytest.approx(68 / 39.6, abs=1e-3)

    disconnect = {"sluice_sse": {"tokens_after_hang_up_max": 0, "server_cpu_seconds_next_2s_max": 0.03},
                  "llama_cpp_server": {"tokens_after_hang_up_max": 2.5, "server_cpu_seconds_next_2s_max": 0.2}}
    hold = {"held_open": 1000, "kib_per_open_stream": 72.0,
            "keepalive": bench.keepalive_summary([5.01, 5.2, 5.9], [3, 2, 4], 5.0)}
    targets = bench.evaluate_targets(rows, disconnect, hold)
    assert targets["sluice_sse: one stream tokens/s >= 0.97x floor"] == {"ratio": 0.99, "met": True}
    assert targets["sluice_v1: one stream tokens/s >= 0.97x floor"]["met"] is False
    assert targets["sluice_sse: one stream first token p50 <= floor + 5 ms"]["met"] is True
    assert targets["sluice_v1: one stream first token p50 <= floor + 5 ms"]["met"] is False
    assert targets["aggregate at 4 streams >= 1.6x one stream"]["reached_by"] == ["sluice_sse", "sluice_v1"]
    ahead = targets["Sluice ahead of llama_cpp.server on every row (aggregate tokens/s and first token p50)"]
    assert ahead["rows"]["sluice_sse @ 4"]["ahead"] is True
    assert ahead["rows"]["sluice_v1 @ 1"]["ahead"] is True  # equal tokens/s, 2 ms sooner
    assert ahead["met"] is True
    assert targets["sluice_sse: <= 1 token and <= 0.05 CPU-seconds after a disconnect"]["met"] is True
    assert targets["llama_cpp_server: <= 1 token and <= 0.05 CPU-seconds after a disconnect"]["met"] is False
    assert targets["1000 queued streams: < 100 KB server memory each, keep-alives on time"]["met"] is True

    table = bench.format_table(rows)
    assert table.splitlines()[0].startswith("side")
    assert len(table.splitlines()) == 1 + len(rows)
    assert "0.990x" in table


def test_keepalive_summary():
    summary = bench.keepalive_summary([5.0, 5.5, 6.2], [4, 4, 3], 5.0)
    assert summary["max_silence_s"] == 6.2
    assert summary["late_streams"] == 1
    assert summary["keepalives_per_stream_median"] == 4
    assert summary["on_time"] is False
    assert bench.keepalive_summary([5.0, 5.9], [4, 4], 5.0)["on_time"] is True
    # A window shorter than the interval shows nothing: a stream without a keep-alive is not on time.
    assert bench.keepalive_summary([2.7, 2.5], [0, 0], 5.0)["on_time"] is False
    assert bench.keepalive_summary([], [], 5.0)["on_time"] is False


class ScriptedSides:
    """Lone streams whose first text comes after a fixed time per side, plus a drift per round
    that hits every side of the round alike."""

    def __init__(self, first_ms: dict, drift_ms: list[float]) -> None:
        self.first_ms, self.drift_ms, self.calls = first_ms, drift_ms, []

    def run(self, side, worker, prompt, max_tokens):
        self.calls.append(side)
        drift = self.drift_ms[(len(self.calls) - 1) // 3]
        record = bench._new_record()
        sent = time.perf_counter()
        first = sent + (self.first_ms[side] + drift) / 1000
        record.update(ok=True, sent=sent, first=first, last=first + 0.1, tokens=max_tokens)
        return record


def test_lone_phase_pairs_each_round_with_the_floor_and_feeds_the_first_token_target():
    from concurrent.futures import ThreadPoolExecutor

    drift = [0, 40, 0, 90, 5, 60]  # the VM's drift between rounds: far larger than the differences
    sides = ScriptedSides({"floor": 70.0, "sluice_sse": 73.0, "sluice_v1": 78.0}, drift)
    with ThreadPoolExecutor(1) as worker:
        lone, index = bench.lone_first_token_phase(sides, [worker], [], 2, pairs=6, first_index=100, settle=0)
    assert index == 118 and len(sides.calls) == 18
    assert sides.calls[:6] == ["floor", "sluice_sse", "sluice_v1", "sluice_sse", "sluice_v1", "floor"]  # rotates
    assert lone["sides"]["sluice_sse"]["paired_delta_ms_p50_vs_floor"] == pytest.approx(3.0, abs=0.2)
    assert lone["sides"]["sluice_v1"]["paired_delta_ms_p50_vs_floor"] == pytest.approx(8.0, abs=0.2)

    rows = [{"side": "sluice_sse", "streams": 1, "vs_floor": {"tokens_per_second_per_stream": 1.0,
                                                              "first_token_ms_p50_delta": 30.0}}]
    target = bench.evaluate_targets(rows, lone=lone)["sluice_sse: one stream first token p50 <= floor + 5 ms"]
    assert target["met"] is True and target["from"] == "lone phase, 6 rounds"
    assert bench.evaluate_targets(rows)["sluice_sse: one stream first token p50 <= floor + 5 ms"]["met"] is False
