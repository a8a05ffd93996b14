"""The two llama.cpp engines (SLUICE_ENGINE) against the real model: the same greedy text,
a caller's prefix found on whichever slot it is given, cores shared among busy contexts."""
from __future__ import annotations

import threading
from contextlib import closing
from itertools import islice

import llama_cpp
import pytest

from generation.backends.base import BackendError, CancelFlag, SamplingParams
from generation.backends.llamacpp import LlamaCppBackend
from generation.backends.model_files import embedded_model_file

pytestmark = pytest.mark.integration
GREEDY = SamplingParams(max_tokens=16, temperature=0)
SAMPLED = SamplingParams(max_tokens=2, temperature=0.8)  # reuses the whole cached prefix
PROMPTS = [
    "Write a short, friendly product description for a bamboo desk organiser:",
    "List three tips for keeping a small office tidy.",
    "Explain in two sentences why tea cools faster in a wide cup.",
]


def load(engine, slots=2, threads=2):
    model = embedded_model_file()
    return LlamaCppBackend(
        model_path=str(model.path), model_name=model.name, model_version=model.sha256,
        n_ctx=1024, n_batch=64, n_threads=threads, slots=slots, engine=engine,
    )


@pytest.fixture(scope="module", params=["batched", "contexts"])
def backend(request):
    backend = load(request.param)
    yield backend
    backend.close()


def generate(backend, prompt, *, slot=0, owner=None, params=GREEDY):
    stream = backend.generate(
        slot=slot, prompt_tokens=backend.tokenize(prompt), params=params, cancel=CancelFlag(), cache_owner=owner
    )
    with closing(stream):
        return "".join(islice(stream, params.max_tokens))


def test_a_caller_finds_its_prefix_whichever_slot_the_scheduler_gives(backend):
    generate(backend, PROMPTS[0], slot=0, owner="key:a", params=SAMPLED)
    generate(backend, PROMPTS[0], slot=1, owner="key:a", params=SAMPLED)  # the scheduler hands out slots in turn
    assert backend.last_prompt_evaluated(1) == 1  # key:a's cache, wherever slot 0's run left it
    if backend.info.extra["engine"] == "batched":
        # A lone run on the contexts engine takes the lead context (all threads), evicting
        # what another caller left there; the batched engine takes the least recently used.
        generate(backend, PROMPTS[1], slot=0, owner="key:b", params=SAMPLED)
        generate(backend, PROMPTS[0], slot=0, owner="key:a", params=SAMPLED)
        assert backend.last_prompt_evaluated(0) == 1  # key:a's cache survived key:b's run
    generate(backend, PROMPTS[0], slot=0, owner="key:c", params=SAMPLED)
    assert backend.last_prompt_evaluated(0) == len(backend.tokenize(PROMPTS[0]))  # never another caller's


def test_contexts_engine_gives_the_batched_engines_greedy_text_alone_and_concurrently():
    batched = load("batched", slots=1)
    try:
        expected = [generate(batched, prompt) for prompt in PROMPTS[:2]]
    finally:
        batched.close()
    contexts = load("contexts", slots=2)
    try:
        assert [generate(contexts, prompt) for prompt in PROMPTS[:2]] == expected  # alone: all threads
        results = {}

        def run(slot):
            results[slot] = generate(contexts, PROMPTS[slot], slot=slot)

        threads = [threading.Thread(target=run, args=(slot,)) for slot in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Each run is alone in its context, so concurrency (and a thread each) changes nothing.
        assert [results[0], results[1]] == expected
    finally:
        contexts.close()


def test_busy_contexts_take_a_thread_each_and_a_lone_stream_all_of_them():
    backend = load("contexts", slots=2, threads=2)
    pool = backend._engine
    shares, release, both_running = [], threading.Event(), threading.Barrier(2, timeout=30)
    try:
        generate(backend, PROMPTS[2], slot=1)
        assert pool.engines[0].caches[0].tokens and not pool.engines[1].caches[0].tokens  # a lone run goes to the lead
        assert [pool._threads_for(0), pool._threads_for(1)] == [2, 1]

        def consume(slot):
            stream = backend.generate(slot=slot, prompt_tokens=backend.tokenize(PROMPTS[slot]),
                                      params=SamplingParams(max_tokens=200, temperature=0), cancel=CancelFlag())
            with closing(stream):
                next(stream)
                both_running.wait()
                shares.append([pool._threads_for(0), pool._threads_for(1)])
                release.wait(30)

        threads = [threading.Thread(target=consume, args=(slot,)) for slot in (0, 1)]
        for thread in threads:
            thread.start()
        while len(shares) < 2 and all(thread.is_alive() for thread in threads):
            threading.Event().wait(0.01)
        release.set()
        for thread in threads:
            thread.join(30)
        assert shares == [[1, 1], [1, 1]]  # OpenMP teams never hold more threads than there are cores
        assert pool._threads_for(0) == 2 and backend.busy_slots() == set()
    finally:
        release.set()
        backend.close()


def test_a_step_lists_its_sequences_in_order_so_llama_cpp_reads_them_in_one_pass(monkeypatch):
    # With a KV stream per sequence, llama.cpp splits a batch wherever the next token's
    # sequence is not the last one's + 1, and each part is a pass over the whole model.
    backend = load("batched", slots=3)
    real_decode, steps = llama_cpp.llama_decode, []

    def recording_decode(ctx, batch):
        steps.append([batch.seq_id[i][0] for i in range(batch.n_tokens)])
        return real_decode(ctx, batch)

    monkeypatch.setattr(llama_cpp, "llama_decode", recording_decode)
    params = SamplingParams(max_tokens=400, temperature=0)
    counting = "Count from 1 to 5000, one number per line, without skipping any:"  # no early end of text

    def start(slot):
        stream = backend.generate(slot=slot, prompt_tokens=backend.tokenize(counting), params=params,
                                  cancel=CancelFlag())
        next(stream)
        return stream

    try:
        first, second, third = start(0), start(1), start(2)  # sequences 0, 1 and 2
        second.close()
        fourth = start(1)  # the free sequence 1, admitted after sequence 2
        steps.clear()
        for _ in range(3):
            next(fourth)
        for stream in (first, third, fourth):
            stream.close()
        together = [step for step in steps if set(step) == {0, 1, 2}]
        assert together and all(step == sorted(step) for step in steps)
    finally:
        backend.close()


def test_an_unknown_engine_is_refused_before_loading():
    with pytest.raises(BackendError, match="unknown llama.cpp engine"):
        load("threads")
