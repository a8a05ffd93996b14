"""Compare the redaction core of another checkout (e.g. a ``git worktree`` of the commit
before an optimisation) with this one: identical spans, then latency interleaved per call.

    git worktree add --detach /tmp/sluice_old <commit>
    .venv/bin/python -m tests.redaction.compare_revisions /tmp/sluice_old [--prompts 3000] [--runs 2000]

Spans: every record of the three corpora plus ``--prompts`` generated 4 KB prompts (the
bench's recipe, other seeds, with upper-cased, rotated, no-break-space and mixed-case
variants) go through ``detect()`` under four language/region settings, and ``redact()``
under three policies for one text in three; each checkout runs in its own subprocess and
dumps JSON, which must be equal. Latency: both packages in one process (the old one
imported as ``redaction_old``), ``redact()`` with every type and every language, each
call of one followed by a call of the other (bench/redaction_bench.py's ``interleaved``).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [dict(languages=None, region="US"), dict(languages=["de"], region="DE"),
           dict(languages=["en", "fr"], region="GB"), dict(languages=["it", "pt", "nl", "es"], region="US")]
POLICIES = [{}, {"PRICE": "allow", "COMMERCIAL_TERM": "allow"}, {"EMAIL_ADDRESS": "allow", "SECRET": "reject"}]


def _bench():
    sys.path.insert(0, str(ROOT / "bench"))
    import redaction_bench  # noqa: PLC0415  (the bench script is not a package)
    return redaction_bench


def texts(n_prompts: int) -> tuple[list[str], list[list[str]]]:
    rb = _bench()
    data = ROOT / "tests" / "data"
    corpora = [rb.load_corpus(data / name) for name in
               ("redaction_corpus.jsonl", "redaction_eval_dev.jsonl", "redaction_eval_test.jsonl")]
    out = [r["text"] for corpus in corpora for r in corpus]
    rng = random.Random(1)
    for seed in range(max(1, n_prompts // 100)):
        for p in rb.build_prompts(corpora[seed % 3], 100, seed=seed * 7 + 3, labelled_every=1 + seed % 4):
            r = rng.random()
            if r < 0.2:
                p = p.upper()
            elif r < 0.3:
                a = rng.randrange(len(p))
                p = p[a:] + p[:a]
            elif r < 0.4:
                p = p.replace(" ", "\u00a0", 20)
            elif r < 0.5:
                p = "".join(c.upper() if rng.random() < 0.1 else c for c in p)
            out.append(p)
    return out, [list(t) for t in corpora[0][0].get("terms", [])]


def dump(texts_file: str, out_file: str) -> None:
    """Run in a subprocess whose sys.path starts with the checkout to measure."""
    from redaction import Policy, TermMatcher, detect, redact  # noqa: PLC0415
    with open(texts_file, encoding="utf-8") as fh:
        payload = json.load(fh)
    terms = TermMatcher([tuple(t) for t in payload["terms"]])
    result = []
    for k, text in enumerate(payload["texts"]):
        cfg = CONFIGS[k % len(CONFIGS)] if k % 2 else CONFIGS[0]
        row = {"spans": [[s.start, s.end, s.type, s.score] for s in detect(text, terms=terms, **cfg)]}
        if k % 3 == 0:
            row["redact"] = []
            for actions in POLICIES:
                red = redact(text, Policy(actions, languages=cfg["languages"], region=cfg["region"]), terms=terms)
                row["redact"].append([red.text, dict(red.counts), list(red.rejected)])
        result.append(row)
    with open(out_file, "w", encoding="utf-8") as fh:
        json.dump(result, fh)


def compare_spans(old_root: Path, n_prompts: int) -> bool:
    all_texts, terms = texts(n_prompts)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "texts.json")
        src.write_text(json.dumps({"texts": all_texts, "terms": terms}), encoding="utf-8")
        results = []
        for label, root in (("old", old_root), ("new", ROOT)):
            out = Path(tmp, f"{label}.json")
            code = ("import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2]);"
                    "from tests.redaction.compare_revisions import dump; dump(sys.argv[3], sys.argv[4])")
            subprocess.run([sys.executable, "-c", code, str(root), str(ROOT), str(src), str(out)],
                           check=True, cwd=tmp)
            results.append(json.loads(out.read_text(encoding="utf-8")))
    old, new = results
    differ = [k for k, (a, b) in enumerate(zip(old, new)) if a != b]
    spans = sum(len(row["spans"]) for row in new)
    print(f"{len(all_texts)} texts ({n_prompts} generated 4 KB prompts), {spans} detect() spans, "
          f"{sum('redact' in row for row in new) * len(POLICIES)} redact() results: "
          f"{len(differ)} texts differ" + (f" (first: {differ[:5]})" if differ else ""))
    return not differ and len(old) == len(new)


def compare_latency(old_root: Path, runs: int) -> None:
    rb = _bench()
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(old_root / "redaction", Path(tmp, "redaction_old"))
        sys.path.insert(0, tmp)
        sys.path.insert(0, str(ROOT))
        import redaction as new  # noqa: PLC0415
        import redaction_old as old  # noqa: PLC0415
        records = rb.load_corpus(rb.CORPUS)
        multilingual = rb.load_corpus(rb.EVAL_CORPUS)
        term_list = [tuple(t) for t in records[0].get("terms", [])]
        old_terms, new_terms = old.TermMatcher(term_list), new.TermMatcher(term_list)
        old_policy, new_policy = old.Policy(), new.Policy()
        print(f"{rb.cpu_model()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; redact(), every type, "
              f"every language; {runs} rounds, old and new interleaved per call")
        for mix, source, every in (("dense", records, 1), ("lighter", records, 4), ("multilingual", multilingual, 1)):
            prompts = rb.build_prompts(source, 50, labelled_every=every)
            rows = {"old": (lambda t: old.redact(t, old_policy, terms=old_terms), None),
                    "new": (lambda t: new.redact(t, new_policy, terms=new_terms), None)}
            stats = {k: rb.percentiles(v) for k, v in rb.interleaved(rows, prompts, runs).items()}
            (o50, o99, _), (n50, n99, _) = stats["old"], stats["new"]
            print(f"  {mix:<13} old p50 {o50:5.2f} ms p99 {o99:5.2f} ms   new p50 {n50:5.2f} ms p99 {n99:5.2f} ms"
                  f"   new/old p50 {n50 / o50:.2f}, p99 {n99 / o99:.2f}")
        print(f"  load after: {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old", type=Path, help="root of the other checkout (it has redaction/)")
    ap.add_argument("--prompts", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--no-spans", action="store_true")
    ap.add_argument("--no-latency", action="store_true")
    args = ap.parse_args()
    ok = True
    if not args.no_spans:
        ok = compare_spans(args.old.resolve(), args.prompts)
    if not args.no_latency:
        compare_latency(args.old.resolve(), args.runs)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
