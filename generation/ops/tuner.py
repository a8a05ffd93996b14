"""`manage.py tune`'s measuring: llama.cpp configurations (engine, threads, slots, n_batch)
run by the real backend in this process (the rule and the table are generation/ops/tuning.py).

Every stream has its own prompt and no cache owner, so no run gets a prefix from the cache.
A configuration is measured at 1 stream (twice, the faster kept: other work on the machine
only ever slows a run down) and at 2, 4, 8 streams up to its slot count. More streams than
slots are not run: the slots are full and the rest wait in the queue, so such a cell takes
the figures of `slots` streams (marked as such). A run whose threads shared the cores with
other work, or a lone stream that misses the 5% rule, is run again (twice at most). A thread
count whose best lone stream is more than 10% slower than the best lone stream so far cannot
meet the 5% rule: its other configurations are skipped. The run stops before a step that
would overrun the budget. Then `confirm` measures the
finalists again, interleaved, so that a change in the machine's load while the grid ran
does not decide alone.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from generation.backends.base import Backend, CancelFlag, SamplingParams

from .tuning import BUSY_SHARE, LEVELS, LONE_TOLERANCE, PRUNE_TOLERANCE, Config, Row, choose, percentile

SUBJECTS = (
    "lanterns", "gardening gloves", "bicycle lights", "teapots", "rain jackets", "chess sets", "desk lamps",
    "hiking boots", "cutting boards", "wool blankets", "travel mugs", "bird feeders", "notebooks", "backpacks",
    "kitchen scales", "umbrellas", "picnic baskets", "yoga mats", "wall clocks", "flower pots", "camp stoves",
)


@dataclass
class Streams:
    wall_s: float  # first start to last token
    tokens: int
    first_token_ms: list[float]
    gaps_ms: list[float]
    cpu_s: float = 0.0  # this process's CPU time over the run, every thread
    elapsed_s: float = 0.0  # the run's whole time, threads started to joined

    def cpu_share(self, threads: int) -> float:
        return self.cpu_s / (self.elapsed_s * threads) if self.elapsed_s > 0 and threads > 0 else 1.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.wall_s if self.wall_s > 0 else 0.0


def run_streams(backend: Backend, prompts: Sequence[str | list[int]], max_tokens: int) -> Streams:
    """Start one stream per prompt (text or tokens) at once, on slots 0..n-1; time every token."""
    params = SamplingParams(max_tokens=max_tokens, temperature=0)
    prompts = [backend.tokenize(prompt) if isinstance(prompt, str) else prompt for prompt in prompts]
    stamps: list[list[float]] = [[] for _ in prompts]
    starts = [0.0] * len(prompts)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(prompts))

    def stream(slot: int) -> None:
        try:
            barrier.wait()
            starts[slot] = time.perf_counter()
            for _ in backend.generate(slot=slot, prompt_tokens=prompts[slot], params=params, cancel=CancelFlag()):
                stamps[slot].append(time.perf_counter())
        except BaseException as exc:  # re-raised below, in the measuring thread
            errors.append(exc)

    workers = [threading.Thread(target=stream, args=(slot,), daemon=True) for slot in range(len(prompts))]
    cpu, began = time.process_time(), time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    cpu, elapsed = time.process_time() - cpu, time.perf_counter() - began
    if errors:
        raise errors[0]
    ends = [times[-1] for times in stamps if times]
    return Streams(
        wall_s=(max(ends) - min(starts)) if ends else 0.0,
        tokens=sum(len(times) for times in stamps),
        first_token_ms=[(times[0] - start) * 1000 for times, start in zip(stamps, starts) if times],
        gaps_ms=[(b - a) * 1000 for times in stamps for a, b in zip(times, times[1:])],
        cpu_s=cpu,
        elapsed_s=elapsed,
    )


@dataclass
class Outcome:
    rows: list[Row]
    chosen: Row | None
    elapsed_s: float
    steps: int = 0  # steps measured or skipped, for a progress bar over several passes
    stopped: str = ""  # why the run stopped before the end of its plan
    skipped: list[str] = field(default_factory=list)


class Tuner:
    """Measures `configs` with backends from `load(config)` within `budget_s` seconds (no
    step starts that would end past it; `limit_s`, when larger, is the hard limit for
    `confirm`, whose rounds start only within `budget_s`); `progress(done, total, text)` is
    told before every step."""

    def __init__(self, *, load: Callable[[Config], Backend], configs: Sequence[Config], tokens: int,
                 concurrency: int, budget_s: float, levels: Iterable[int] = LEVELS, prompt_tokens: int = 0,
                 prune: bool = True, prompt_offset: int = 0, limit_s: float | None = None,
                 cores: int | None = None, progress: Callable[[int, int, str], None] = lambda *a: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.load, self.configs, self.tokens = load, list(configs), tokens
        self.concurrency, self.budget_s = concurrency, budget_s
        self.limit_s = max(limit_s or budget_s, budget_s)
        self.cores = cores  # the cores the threads may use; None: no CPU share check (GPU offload)
        self.levels = sorted(set(levels) | {1, concurrency})
        self.prompt_tokens, self.prune = prompt_tokens, prune  # prompt_tokens 0: short prompts
        self.progress, self.clock = progress, clock
        self.prompt_index = prompt_offset  # a second pass continues where the first left off
        self._per_token: dict[int, list[float]] = {}  # level -> seconds per generated token, each time
        self._load_s = 0.0  # the slowest load and warm-up seen
        self._started = clock()  # the budget counts from here, or from run()

    def prompts(self, backend, count: int) -> list[str | list[int]]:
        """`count` prompts unlike any before them in this run (different from their first word):
        texts, or with `prompt_tokens` set, tokens cut to that length."""
        found = []
        for _ in range(count):
            index, self.prompt_index = self.prompt_index, self.prompt_index + 1
            subject = SUBJECTS[index % len(SUBJECTS)]
            text = f"Catalogue {index}, {subject}: write a long, detailed description for the shop's website."
            if self.prompt_tokens:  # a long prompt: item lines before the request, cut to length
                lines = " ".join(f"Item {index}-{k}: {SUBJECTS[(index + k) % len(SUBJECTS)]}, sturdy, in three sizes."
                                 for k in range(self.prompt_tokens // 8))
                found.append(backend.tokenize(f"{lines}\n{text}")[: self.prompt_tokens])
            else:
                found.append(text)
        return found

    def run_streams(self, subject, count: int, max_tokens: int) -> Streams:
        """`count` fresh streams on `subject`: a backend, or a served configuration
        (generation/ops/served_tuning.py) that runs the streams itself."""
        prompts = self.prompts(subject, count)
        if hasattr(subject, "run_streams"):
            return subject.run_streams(prompts, max_tokens)
        return run_streams(subject, prompts, max_tokens)

    def steps(self, config: Config) -> list[int]:
        """The levels measured for `config` (1 is the lone stream, run twice)."""
        return sorted({min(level, config.slots) for level in self.levels})

    def run(self) -> Outcome:
        self._started = self.clock()
        rows: list[Row] = []
        pruned: dict[int, str] = {}  # thread count -> why its configurations are skipped
        total = sum(len(self.steps(config)) for config in self.configs)
        done, stopped, skipped = 0, "", []
        for position, config in enumerate(self.configs):
            if config.threads in pruned:
                skipped.append(f"{config.label.strip()}: {pruned[config.threads]}")
                total -= len(self.steps(config))
                continue
            spent = self.clock() - self._started >= self.budget_s
            if spent or rows and self._over_budget(level=1, streams=2, load=True):
                stopped = f"the time budget would run out: {len(self.configs) - position} configuration(s) not measured"
                break
            self.progress(done, total, f"{config.label}: loading")
            row = Row(config)
            stopped = self._measure(row, rows, lambda text: self.progress(done, total, text))
            if row.lone is not None:  # else the budget stopped it before its first figure
                rows.append(row)
            done += len(self.steps(config))
            if row.note.startswith("pruned"):
                pruned[config.threads] = f"skipped: {config.threads} thread(s) pruned above"
            if stopped:
                break
        self.progress(total, total, "done")
        return Outcome(rows=rows, chosen=choose(rows, concurrency=self.concurrency),
                       elapsed_s=self.clock() - self._started, steps=total, stopped=stopped, skipped=skipped)

    def _estimate(self, *, level: int, streams: int, load: bool = False) -> float:
        """Seconds for `streams` streams at `level` (plus a load), from the runs so far."""
        known = [seconds for measured, seconds in sorted(self._per_token.items()) if measured <= level]
        per_token = sum(known[-1]) / len(known[-1]) if known else 0.0  # the nearest level measured, on average
        return streams * self.tokens * per_token + (self._load_s if load else 0.0)

    def _over_budget(self, *, level: int, streams: int, load: bool = False, more: float = 0.0,
                     budget: float | None = None) -> bool:
        estimate = self._estimate(level=level, streams=streams, load=load) + more
        return self.clock() - self._started + estimate > (budget or self.budget_s)

    def _measure(self, row: Row, before: Sequence[Row], say: Callable[[str], None]) -> str:
        """Fill `row` (`before`: the rows measured so far); returns why the budget stopped it, or ''."""
        best_lone = max((r.lone for r in before if r.lone), default=None)
        own_best = max((r.lone for r in before if r.lone and r.config.threads == row.config.threads), default=0.0)
        config, began = row.config, self.clock()
        backend = self.load(config)
        try:
            self.run_streams(backend, min(config.slots, 4), 2)  # first decodes allocate: not counted
            self._load_s = max(self._load_s, self.clock() - began)
            for level in self.steps(config):
                runs = 2 if level == 1 else 1
                if self._over_budget(level=level, streams=level * runs):
                    measured = max(row.aggregate, default=0)
                    return f"the time budget would run out: {config.label.strip()} measured up to {measured} stream(s)"
                say(f"{config.label}: {level} stream(s)")
                t0 = self.clock()
                results = self._runs(backend, config, level, runs, best_lone=best_lone)
                self._record(row, level, results, started=t0)
                slow = best_lone and max(row.lone, own_best) < (1 - PRUNE_TOLERANCE) * best_lone
                if level == 1 and self.prune and slow:
                    row.note = (f"pruned: a lone stream {(1 - row.lone / best_lone) * 100:.0f}% slower than the best, "
                                f"so no configuration with {config.threads} thread(s) can meet the 5% rule")
                    return ""
        finally:
            backend.close()
        return ""

    def _share(self, result: Streams, config: Config) -> float:
        return result.cpu_share(min(config.threads, self.cores)) if self.cores else 1.0

    def _runs(self, backend: Backend, config: Config, level: int, runs: int, *, best_lone: float | None = None,
              budget: float | None = None) -> list[Streams]:
        """`runs` runs of `level` streams, and up to two more while the best one shared the
        cores with other work, or a lone stream misses the 5% rule: other work only ever
        slows a run down, so a rerun may show the machine's own speed."""
        results = [self.run_streams(backend, level, self.tokens) for _ in range(runs)]
        for _ in range(2):
            disturbed = max(self._share(result, config) for result in results) < BUSY_SHARE
            missed = level == 1 and best_lone and max(map(_decode_rate, results)) < (1 - LONE_TOLERANCE) * best_lone
            if not (disturbed or missed) or self._over_budget(level=level, streams=level, budget=budget):
                break
            results.append(self.run_streams(backend, level, self.tokens))
        return results

    def _record(self, row: Row, level: int, results: Sequence[Streams], *, started: float) -> None:
        """Add runs at `level` to `row`, keeping the best figures: other work on the machine
        only ever slows a run down, so the best run is the closest to the machine's own speed."""
        self._per_token.setdefault(level, []).append(
            (self.clock() - started) / max(sum(result.tokens for result in results), 1))
        if level == 1:
            first = min(result.first_token_ms[0] for result in results)
            row.first_token_ms = round(min(first, row.first_token_ms or first), 1)
            row.lone = round(max([_decode_rate(result) for result in results] + [row.lone or 0.0]), 2)
        if self.cores:
            share = max(self._share(result, row.config) for result in results)
            row.cpu_share[level] = round(max(share, row.cpu_share.get(level, 0.0)), 2)
        best = max(results, key=lambda result: result.tokens_per_second)
        if best.tokens_per_second > row.aggregate.get(level, 0.0):
            row.aggregate[level] = round(best.tokens_per_second, 2)
            row.p95_itl_ms[level] = round(percentile(best.gaps_ms, 0.95), 1)

    def confirm(self, rows: Sequence[Row], *, finalists: int = 3, rounds: int = 2) -> Outcome:
        """Measure the likeliest choices again, interleaved (A B C, then C B A), at one stream
        and at the expected concurrency: one sample each, taken minutes apart, decides less
        than the 5% rule needs on a machine whose load changes meanwhile. The finalists are
        the best `finalists` at the expected concurrency, the best lone stream and the first
        configuration of the plan (the default). Returns them with the figures of all runs."""
        ranked = sorted((row for row in rows if row.at(self.concurrency) and row.lone),
                        key=lambda row: row.at(self.concurrency)[0], reverse=True)
        if not ranked:
            return Outcome(rows=[], chosen=None, elapsed_s=0.0)
        picked = ranked[:finalists] + [max(ranked, key=lambda row: row.lone)]
        picked += [row for row in ranked if self.configs and row.config == self.configs[0]]
        copies = {row.config: replace(row, aggregate=dict(row.aggregate), p95_itl_ms=dict(row.p95_itl_ms),
                                      cpu_share=dict(row.cpu_share), note="")
                  for row in picked}
        order, stopped, done, finished = list(copies.values()), "", 0, 0
        total = rounds * len(order) * 2
        for round_ in range(rounds):
            levels = [min(self.concurrency, row.config.slots) for row in order]
            if self._over_budget(level=1, streams=0, more=sum(
                    self._estimate(level=level, streams=level + 1, load=True) for level in levels)):
                stopped = f"the time budget would run out: {round_} of {rounds} confirming rounds done"
                break
            for row in order if round_ % 2 == 0 else order[::-1]:
                level = min(self.concurrency, row.config.slots)
                if self._over_budget(level=level, streams=level + 1, load=True, budget=self.limit_s):
                    stopped = f"the time budget ran out in confirming round {round_ + 1}"
                    break
                self.progress(done, total, f"{row.config.label}: confirming")
                backend = self.load(row.config)
                try:
                    self.run_streams(backend, min(row.config.slots, 4), 2)
                    for streams in dict.fromkeys((1, level)):
                        t0 = self.clock()
                        self._record(row, streams, self._runs(backend, row.config, streams, 1, budget=self.limit_s),
                                     started=t0)
                        done += 1
                finally:
                    backend.close()
            if stopped:
                break
            finished += 1
        for row in order:
            row.note = f"best of the grid's runs and {finished} interleaved round(s)"
        self.progress(total, total, "done")
        return Outcome(rows=order, chosen=choose(order, concurrency=self.concurrency),
                       elapsed_s=self.clock() - self._started, steps=total, stopped=stopped)


def _decode_rate(result: Streams) -> float:
    return 1000 / (sum(result.gaps_ms) / len(result.gaps_ms)) if result.gaps_ms else 0.0
