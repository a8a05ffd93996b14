"""Choosing a llama.cpp configuration for `manage.py tune`: the grid (`plan`), the figures of
each configuration (`Row`), the rule (`choose`) and the table. The measuring is
generation/ops/tuner.py."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from generation.backends.cpu import usable_cores

LONE_TOLERANCE = 0.05  # a lone stream at most 5% slower than the best lone stream
# A lone request's first token may be this much later than the best one's: the margin the
# benchmark's target allows over in-process llama.cpp (docs/benchmarks.md), so a choice that
# meets the rule here does not spend the target's whole margin on its slots.
FIRST_TOKEN_SLACK_MS = 5.0
# For the n_batch pass's long prompts, whose first token is mostly prefill: a share of it.
LONG_PROMPT_FIRST_TOKEN_TOLERANCE = 0.20
PRUNE_TOLERANCE = 0.10  # twice the rule's margin, so noise does not prune a candidate
# Aggregates this close are a tie (a configuration's own runs differ by as much): it goes to
# one with a slot for every expected stream, since the others' extra streams wait in the
# queue for a whole generation before their first token, which no figure here shows.
TIE_TOLERANCE = 0.03
# Of the cores its threads could use, the CPU time a run got: nearly all of it at the machine's
# own speed, clearly less when other work slowed the run down (docs/cli.md has the figures).
BUSY_SHARE = 0.85
LEVELS = (1, 2, 4, 8)  # streams at once, as the table shows them


@dataclass(frozen=True)
class Config:
    engine: str
    threads: int
    slots: int
    n_batch: int

    @property
    def label(self) -> str:
        return f"{self.engine:<8} threads={self.threads} slots={self.slots} n_batch={self.n_batch}"

    def values(self) -> dict:
        return {"SLUICE_N_THREADS": self.threads, "SLUICE_SLOTS": self.slots, "SLUICE_ENGINE": self.engine,
                "SLUICE_N_BATCH": self.n_batch}


@dataclass
class Row:
    """One configuration's figures: level (streams at once) -> aggregate tokens/s and p95
    inter-token latency; level 1 is the lone stream, with its first token."""

    config: Config
    first_token_ms: float | None = None
    lone: float | None = None  # the lone stream's tokens/s after its first token, as a client sees it
    aggregate: dict[int, float] = field(default_factory=dict)  # all tokens / wall time, prompts included
    p95_itl_ms: dict[int, float] = field(default_factory=dict)
    cpu_share: dict[int, float] = field(default_factory=dict)  # level -> the best CPU share of its runs
    note: str = ""

    def disturbed(self, level: int) -> bool:
        """Whether every run at `level` shared the cores with other work (its figure is suspect)."""
        return self.cpu_share.get(level, 1.0) < BUSY_SHARE

    def at(self, streams: int) -> tuple[float, float, bool] | None:
        """(aggregate tokens/s, p95 ms, taken from `slots` streams) at `streams`, if measured."""
        level = min(streams, self.config.slots)
        if level not in self.aggregate:
            return None
        return self.aggregate[level], self.p95_itl_ms[level], level != streams

    def as_dict(self) -> dict:
        return {"config": self.config.values(), "first_token_ms": self.first_token_ms,
                "lone_tokens_per_second": self.lone, "aggregate_tokens_per_second": self.aggregate,
                "p95_inter_token_ms": self.p95_itl_ms, "cpu_share": self.cpu_share, "note": self.note}


def choose(rows: Iterable[Row], *, concurrency: int, lone_rule: bool = True, first_token_tolerance: float = 0.0,
           prefer: Callable[[Row], bool] | None = None) -> Row | None:
    """Among the configurations whose lone stream is within 5% of the best lone tokens/s
    and whose first token is within 5 ms (plus `first_token_tolerance` of it) of the best
    of those, the one with the highest aggregate tokens/s at `concurrency` streams; within
    3% of it, a `prefer`red one first (default: at least `concurrency` slots), then the
    higher aggregate, then the faster lone stream. `lone_rule=False` drops the 5% rule, for
    rows whose lone streams decode the same work (n_batch changes how a prompt is read, not
    a generated token)."""
    rows = [row for row in rows if row.lone is not None and row.at(concurrency) is not None]
    if not rows:
        return None
    best_lone = max(row.lone for row in rows)
    fast = [row for row in rows if not lone_rule or row.lone >= (1 - LONE_TOLERANCE) * best_lone]
    best_first = min(row.first_token_ms for row in fast)
    eligible = [row for row in fast
                if row.first_token_ms <= best_first * (1 + first_token_tolerance) + FIRST_TOKEN_SLACK_MS]
    best = max(row.at(concurrency)[0] for row in eligible)
    near = [row for row in eligible if row.at(concurrency)[0] >= (1 - TIE_TOLERANCE) * best]
    prefer = prefer or (lambda row: row.config.slots >= concurrency)
    return max(near, key=lambda row: (prefer(row), row.at(concurrency)[0], row.lone))


def plan(*, threads: Sequence[int], slots: Sequence[int], engines: Sequence[str], n_batch: int,
         default_slots: int = 4) -> list[Config]:
    """The grid in the order it is measured, most telling first: per thread count, the
    default slot count on each engine, then fewer slots; more slots than the default last."""
    first = sorted({s for s in slots if s <= default_slots}, reverse=True)
    later = sorted(s for s in slots if s > default_slots)
    order = []
    for group in (first, later):
        for count in threads:
            for slot_count in group:
                for engine in engines:
                    if engine == "contexts" and slot_count == 1 and "batched" in engines:
                        continue  # one context with one sequence: the batched engine with one slot
                    order.append(Config(engine=engine, threads=count, slots=slot_count, n_batch=n_batch))
    return order


def physical_cores(sysfs: Path = Path("/sys/devices/system/cpu")) -> int:
    """Physical cores among those this process may use (SMT siblings counted once): llama.cpp
    often decodes faster with one thread per physical core than with one per logical CPU."""
    try:
        cpus = os.sched_getaffinity(0)
        cores = {((sysfs / f"cpu{cpu}/topology/physical_package_id").read_text().strip(),
                  (sysfs / f"cpu{cpu}/topology/core_id").read_text().strip()) for cpu in cpus}
        return len(cores) or usable_cores()
    except (AttributeError, OSError):
        return usable_cores()


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else 0.0


def table(rows: Sequence[Row], *, concurrency: int, chosen: Row | None, levels: Sequence[int] = LEVELS) -> str:
    """The rows as a text table: lone first token and tokens/s, then per level aggregate
    tokens/s and p95 inter-token latency; `*` marks figures taken from `slots` streams, `!`
    figures whose every run shared the cores with other work."""
    shown = [level for level in sorted(set(levels) | {concurrency}) if level > 1]
    width = max([len(row.config.label) for row in rows] + [20]) + 2
    head1 = " " * width + f"{'1 stream':<19}" + "".join(f"{f'{level} streams':<20}" for level in shown)
    head2 = f"{'  configuration':<{width}}" + f"{'first ms':>9}{'tok/s':>8}  " + \
        "".join(f"{'tok/s':>9}{'p95 ms':>9}  " for _ in shown)
    lines = [head1.rstrip(), head2.rstrip()]
    for row in rows:
        mark = "> " if row is chosen else "  "
        cells = f"{_number(row.first_token_ms, 9, 1)}{_number(row.lone, 8, 1)}{'!' if row.disturbed(1) else ' '} "
        for level in shown:
            figures = row.at(level)
            if figures is None:
                cells += f"{'-':>9}{'-':>9}  "
            else:
                star = "!" if row.disturbed(min(level, row.config.slots)) else "*" if figures[2] else " "
                cells += f"{figures[0]:>8.1f}{star}{figures[1]:>8.1f}{star} "
        lines.append(f"{mark}{row.config.label:<{width - 2}}{cells}{row.note}".rstrip())
    return "\n".join(lines)


def _number(value: float | None, width: int, digits: int) -> str:
    return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"
