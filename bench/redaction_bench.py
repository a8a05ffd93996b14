"""Redaction benchmark: 4 KB prompt latency of redact() and detect(), interleaved with a baseline.

Run: python bench/redaction_bench.py [--runs 2000] [--no-presidio]
Compares with presidio-analyzer's pattern recognizers (no NLP model) when
that package is importable; otherwise says so and carries on. Precision and
recall per type come from ``python -m tests.redaction.evaluation``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redaction import Policy, TermMatcher, detect, redact  # noqa: E402
from redaction.phones import clear_cache as clear_phone_cache  # noqa: E402
from redaction.fields import DEFAULT_FIELD_POLICIES  # noqa: E402  (plain data; Django stays unconfigured)
from redaction.spans import Span  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "redaction_corpus.jsonl"
EVAL_CORPUS = ROOT / "tests" / "data" / "redaction_eval_dev.jsonl"


def load_corpus(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def build_prompts(records: list[dict], n: int, size: int = 4096, seed: int = 7, labelled_every: int = 1) -> list[str]:
    """~4 KB prompts of corpus records joined like form fields.

    labelled_every=1: any record (dense, ~80 sensitive values per 4 KB);
    labelled_every=k: only every k-th record carries labels, the others are
    label-free corpus records (hard negatives / plain copy): a lighter mix.
    """
    rng = random.Random(seed)
    labelled = [r for r in records if r["spans"]]
    plain = [r for r in records if not r["spans"]]
    prompts = []
    for _ in range(n):
        parts, length = [], 0
        while length < size:
            pool = records if labelled_every == 1 else (labelled if len(parts) % labelled_every == 0 else plain)
            text = rng.choice(pool)["text"]
            parts.append(text)
            length += len(text) + 2
        prompts.append("\n\n".join(parts)[:size])
    return prompts


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3  # noqa: E731
    return pick(0.50), pick(0.99), statistics.fmean(ordered) * 1e3


def busy_loop(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def loop_size_for(target_ms: float) -> int:
    """How many ``busy_loop`` steps take ``target_ms`` on this machine (best of 5)."""
    n, took = 20_000, float("inf")
    for _ in range(5):
        start = time.perf_counter()
        busy_loop(n)
        took = min(took, time.perf_counter() - start)
    return max(1, int(n * target_ms / 1000 / took))


def interleaved(rows: dict[str, tuple], prompts: list[str], runs: int) -> dict[str, list[float]]:
    """Time every row once per round, round-robin, ``runs`` rounds: each row is
    ``(fn, setup)``, ``setup`` (untimed, may be None) runs right before its call,
    e.g. to empty a cache. Interleaving gives every row the same machine: timed
    one after the other, rows drift apart with the machine's load alone."""
    names = list(rows)
    for text in prompts[:20]:  # warm-up
        for fn, _ in rows.values():
            fn(text)
    samples: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter
    for i in range(runs):
        text = prompts[i % len(prompts)]
        for k in range(len(names)):  # rotate the order so no row always follows another
            name = names[(i + k) % len(names)]
            fn, setup = rows[name]
            if setup is not None:
                setup()
            start = clock()
            fn(text)
            samples[name].append(clock() - start)
    return samples


def presidio_recognizers():
    """Presidio's pattern recognizers for the types both libraries cover, or an error string."""
    try:
        import tldextract.tldextract as tx  # presidio's e-mail check; keep it off the network
        tx.TLD_EXTRACTOR = tx.TLDExtract(suffix_list_urls=())
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            PhoneRecognizer,
        )
    except Exception as exc:  # ImportError, or a broken optional install
        return f"presidio-analyzer not usable here ({type(exc).__name__})"
    return [EmailRecognizer(), PhoneRecognizer(), CreditCardRecognizer(), IbanRecognizer(), IpRecognizer()]


def presidio_detect(recognizers, text: str, threshold: float = 0.3) -> list[Span]:
    found = []
    for rec in recognizers:
        for r in rec.analyze(text, rec.supported_entities, nlp_artifacts=None):
            if r.score >= threshold:
                found.append(Span(r.start, r.end, r.entity_type, r.score))
    found.sort(key=lambda s: (s.start, -s.end))
    out: list[Span] = []
    for s in found:  # presidio may return overlaps; keep first/longest
        if not out or s.start >= out[-1].end:
            out.append(s)
    return out


# A model's answer as it streams (about 400 tokens): prose, a list, figures, a config
# snippet and a few words the guard watches ("key", "password", "token").
MODEL_OUTPUT = """Thanks for the detailed notes. Here is a summary of the key points and a draft reply you can send.

1. Delivery: the first batch of 2,400 units ships on 14 March from the Rotterdam warehouse, and the second
   batch follows two weeks later. Lead times stay at 21 days for repeat orders.
2. Pricing: the quoted unit price holds until the end of Q3; after that the supplier may adjust it by up to
   4% in line with raw material costs. Volume above 10,000 units a year qualifies for the tiered schedule.
3. Payment: invoices are due 30 days from delivery. Late payments accrue interest at the statutory rate.
4. Support: the account team answers within one business day, and urgent issues go to the on-call line.

Draft reply:

Dear Ms. Alvarez,

Thank you for the revised proposal. We are happy with the delivery schedule and the pricing terms as
described, and we would like to confirm the first order of 2,400 units for the March shipment. Please send
the order confirmation and the shipping documents to our logistics team, and let us know whether the
pallets can be labelled with our internal reference numbers before they leave the warehouse.

For the portal, our IT team will reset the shared password and send a new access token to your team by
secure message, so nothing sensitive needs to travel by e-mail. In the integration settings, keep
`timeout = 30` and `retries = 3`, and use the same API key rotation schedule as last year.

We look forward to working together on the next phase of the project.

Kind regards,
Jordan
"""


def stream_tokens(text: str) -> list[str]:
    """``text`` cut the way a BPE tokenizer streams it: words with their leading space,
    numbers in up to three digits, punctuation runs, line breaks."""
    import re  # noqa: PLC0415
    return re.findall(r" ?[A-Za-z]+| ?\d{1,3}| ?[^\sA-Za-z\d]+|\n+| +", text)


def guard_bench(old_root: str | None, runs: int) -> None:
    """CPU time per token fed to OutputGuard.feed_segments over MODEL_OUTPUT, streamed token
    by token; with ``old_root`` (another checkout) its guard runs interleaved, stream by stream."""
    from redaction import OutputGuard  # noqa: PLC0415
    tokens = stream_tokens(MODEL_OUTPUT)
    assert "".join(tokens) == MODEL_OUTPUT
    guards = {"current": OutputGuard}
    if old_root:
        import tempfile  # noqa: PLC0415
        tmp = tempfile.mkdtemp()
        os.symlink(Path(old_root).resolve() / "redaction", Path(tmp, "redaction_old"))
        sys.path.insert(0, tmp)
        import redaction_old  # noqa: PLC0415
        guards = {"old": redaction_old.OutputGuard, **guards}
    outputs = {}
    for name, cls in guards.items():
        g = cls()
        outputs[name] = "".join(s.text for t in tokens for s in g.feed_segments(t)) + g.flush()
    assert len(set(outputs.values())) == 1, "the guards' outputs differ"
    samples: dict[str, list[float]] = {name: [] for name in guards}
    clock = time.process_time
    for i in range(runs):
        for name in (list(guards) if i % 2 else list(guards)[::-1]):
            g = guards[name]()
            start = clock()
            for t in tokens:
                g.feed_segments(t)
            g.flush_segments()
            samples[name].append((clock() - start) / len(tokens))
    print(f"\nOutputGuard.feed_segments, {len(tokens)} tokens of model output fed one by one, {runs} streams "
          f"(CPU time per token, {cpu_model()}):")
    for name, values in samples.items():
        values.sort()
        median, p90 = values[len(values) // 2], values[int(len(values) * 0.9)]
        print(f"  {name:<8} median {median * 1e6:6.1f} us   p90 {p90 * 1e6:6.1f} us")
    if old_root:
        ratio = statistics.median(samples["current"]) / statistics.median(samples["old"])
        print(f"  current/old median {ratio:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--no-presidio", action="store_true")
    ap.add_argument("--guard", action="store_true", help="only the streaming output guard's cost per token")
    ap.add_argument("--guard-old", metavar="ROOT", help="with --guard: another checkout's guard, interleaved")
    args = ap.parse_args()
    if args.guard:
        guard_bench(args.guard_old, args.runs)
        return

    records = load_corpus(CORPUS)
    term_list = [tuple(t) for t in records[0].get("terms", [])]
    terms = TermMatcher(term_list)
    print(f"corpus: {len(records)} records, {sum(len(r['spans']) for r in records)} labelled spans; "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    report = {"machine": f"{cpu_model()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} before",
              "python": sys.version.split()[0], "runs": args.runs, "latency_ms": {}}

    policy = Policy()  # redact every type, as the editor's internal notes do
    prompt_policy = Policy.coerce(DEFAULT_FIELD_POLICIES["prompt"])  # the native API's prompt field
    multilingual = load_corpus(EVAL_CORPUS)
    for mix, source, every in (("dense mix: any corpus record", records, 1),
                               ("lighter mix: 1 in 4 records labelled", records, 4),
                               ("multilingual mix: evaluation dev records", multilingual, 1)):
        prompts = build_prompts(source, 50, labelled_every=every)
        avg_spans = statistics.fmean(len(detect(p, terms=terms)) for p in prompts)
        redact_call = lambda t: redact(t, policy, terms=terms)  # noqa: E731
        # The baseline: a fixed pure-Python loop as long as a median redact() call,
        # so its p99 shows what this machine's scheduling alone does to such a call.
        median_ms = percentiles(interleaved({"redact()": (redact_call, None)}, prompts, 200)["redact()"])[0]
        steps = loop_size_for(median_ms)
        # The 50 prompts repeat, so after the first pass every phone candidate's
        # validation is memoised; the "cold" rows empty that cache before each
        # call, as for a request whose numbers were never seen before. The API
        # prompt policy allows PRICE and COMMERCIAL_TERM, so their detectors do not run.
        rows = {
            "redact(), every type": (redact_call, None),
            "every type, cold phone memo": (redact_call, clear_phone_cache),
            "API prompt policy, cold memo": (lambda t: redact(t, prompt_policy, terms=terms), clear_phone_cache),
            "detect()": (lambda t: detect(t, terms=terms), None),
            "baseline loop, same p50": (lambda _: busy_loop(steps), None),
        }
        print(f"\nlatency, {mix}: {len(prompts)} distinct 4096-char prompts "
              f"(avg {avg_spans:.0f} detected spans each), {args.runs} rounds, rows interleaved:")
        for label, samples in interleaved(rows, prompts, args.runs).items():
            p50, p99, mean = percentiles(samples)
            print(f"  {label:<30} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   mean {mean:6.2f} ms")
            report["latency_ms"][f"{mix.split(':')[0]}, {label}"] = {
                "p50": round(p50, 2), "p99": round(p99, 2), "mean": round(mean, 2)}
    prompts = build_prompts(records, 50)
    report["machine"] += f", {os.getloadavg()[0]:.1f} after"
    out = ROOT / "bench" / "results" / "redaction.json"
    out.write_text(json.dumps(report, indent=2) + "\n")

    if args.no_presidio:
        return
    recognizers = presidio_recognizers()
    if isinstance(recognizers, str):
        print(f"\n{recognizers}; skipping the comparison")
        return
    runs = min(args.runs, 300)
    ours = lambda t: detect(t)  # noqa: E731
    theirs = lambda t: presidio_detect(recognizers, t)  # noqa: E731
    print(f"\nside by side, {runs} rounds, only the 5 shared types for presidio (ours: all types, no terms):")
    rows = {"redaction.detect()": (ours, None), "presidio recognizers": (theirs, None)}
    for label, samples in interleaved(rows, prompts, runs).items():
        p50, p99, mean = percentiles(samples)
        print(f"  {label:<28} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   mean {mean:6.2f} ms")


if __name__ == "__main__":
    main()
