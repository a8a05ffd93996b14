"""Where the batched engine places a run: the caller's reusable prefix first, then next to
the busy sequences (llama.cpp reads consecutive sequences in one pass), then the least
recently used."""
from __future__ import annotations

import threading

from generation.backends.base import SamplingParams
from generation.backends.llama_engine import SequenceCache, Sequence_, best_place

GREEDY = SamplingParams(max_tokens=8, temperature=0)


def run(prompt, owner="key:a"):
    return Sequence_(slot=0, prompt_tokens=prompt, params=GREEDY, cancel=threading.Event(), owner=owner)


def caches(count, *, used=()):
    made = [SequenceCache() for _ in range(count)]
    for index, when in enumerate(used):
        made[index].last_used = when
    return made


def test_with_nothing_busy_the_least_recently_used_is_taken():
    assert best_place(caches(4, used=(4, 3, 1, 2)), [0, 1, 2, 3], run([1, 2, 3]), n_batch=2) == 2


def test_a_run_joins_the_busy_sequences_before_an_older_cache_apart_from_them():
    pool = caches(8, used=(8, 7, 6, 5, 1, 2, 3, 4))
    assert best_place(pool, [2, 3, 4, 5, 6, 7], run([1, 2, 3]), n_batch=2, busy={0, 1}) == 2
    # A free sequence between two busy ones closes the gap.
    assert best_place(pool, [2, 4, 5, 6, 7], run([1, 2, 3]), n_batch=2, busy={1, 3}) == 2
    # Among sequences that all join, the least recently used.
    assert best_place(pool, [3, 4, 5], run([1, 2, 3]), n_batch=2, busy={2, 6}) == 5


def test_the_callers_reusable_prefix_still_comes_first():
    pool = caches(8, used=(8, 7, 6, 5, 1, 2, 3, 4))
    pool[6].tokens, pool[6].owner, pool[6].canonical = [1, 2, 3, 4, 5], "key:a", 4
    assert best_place(pool, [2, 6], run([1, 2, 3, 4, 9]), n_batch=2, busy={0, 1}) == 6
    # Never another caller's prefix: then it is placement as if the cache held nothing.
    assert best_place(pool, [2, 6], run([1, 2, 3, 4, 9], owner="key:b"), n_batch=2, busy={0, 1}) == 2
