"""The llama.cpp backend against the real model, with each engine: prefix cache per caller, native abort."""
from __future__ import annotations

import threading
from contextlib import closing
from itertools import islice

import pytest

from generation.backends.base import CancelFlag, SamplingParams
from generation.backends.llamacpp import LlamaCppBackend
from generation.backends.model_files import embedded_model_file

pytestmark = pytest.mark.integration
PROMPT = "Write a short, friendly product description for a bamboo desk organiser:"
GREEDY = SamplingParams(max_tokens=24, temperature=0)


@pytest.fixture(scope="module", params=["batched", "contexts"])
def backend(request):
    model = embedded_model_file()
    backend = LlamaCppBackend(
        model_path=str(model.path), model_name=model.name, model_version=model.sha256,
        n_ctx=4096, n_batch=128, n_threads=1, slots=2, engine=request.param,
    )
    yield backend
    backend.close()


def generate(backend, prompt_tokens, *, owner, slot=0, cancel=None, params=GREEDY):
    """Text of up to max_tokens tokens (the backend leaves max_tokens to its caller)."""
    stream = backend.generate(
        slot=slot, prompt_tokens=prompt_tokens, params=params, cancel=cancel or CancelFlag(), cache_owner=owner
    )
    with closing(stream):
        return "".join(islice(stream, params.max_tokens))


def test_prefix_cache_is_reused_only_for_the_same_caller(backend):
    tokens = backend.tokenize(PROMPT)
    sampled = SamplingParams(max_tokens=4, temperature=0.8)  # greedy reuses only whole chunks (repeatability tests)
    generate(backend, tokens, owner="key:1", params=sampled)
    assert backend.last_prompt_evaluated(0) == len(tokens)
    generate(backend, tokens, owner="key:1", params=sampled)
    assert backend.last_prompt_evaluated(0) == 1  # all but the last prompt token came from the cache
    generate(backend, tokens, owner="key:2", params=sampled)
    assert backend.last_prompt_evaluated(0) == len(tokens)  # another caller never reuses it
    generate(backend, tokens, owner=None, params=sampled)
    assert backend.last_prompt_evaluated(0) == len(tokens)  # nor does an anonymous one


def test_slots_are_independent_contexts_on_one_model(backend):
    tokens = backend.tokenize(PROMPT)
    results = {}

    def run(slot):
        results[slot] = generate(backend, tokens, owner=f"slot-test-{slot}", slot=slot)

    threads = [threading.Thread(target=run, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results[0] == results[1] == generate(backend, tokens, owner=None)


def test_cancel_aborts_a_prompt_batch_and_the_slot_stays_correct(backend):
    long_tokens = backend.tokenize("Notes on supplier terms and packaging. " * 120)  # several batches
    cancel = CancelFlag()
    threading.Timer(0.15, cancel.set).start()
    assert generate(backend, long_tokens, owner="key:9", cancel=cancel, params=SamplingParams(max_tokens=5)) == ""
    assert backend.busy_slots() == set()
    evaluated_before_abort = backend.last_prompt_evaluated(0)
    assert evaluated_before_abort < len(long_tokens)  # stopped inside the prompt
    # The aborted batch left unknown state in the KV cache: the next run must not trust it.
    tokens = backend.tokenize(PROMPT)
    assert generate(backend, tokens, owner="key:9") == generate(backend, tokens, owner=None)


def test_cancel_already_set_generates_nothing(backend):
    cancel = CancelFlag()
    cancel.set()
    assert generate(backend, backend.tokenize(PROMPT), owner=None, cancel=cancel) == ""
    assert backend.busy_slots() == set()


@pytest.mark.parametrize(
    ("cpuinfo", "safe"),
    [
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n", True),
        ("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8\n", False),
        ("processor\t: 0\nflags\t\t: fpu amx_tiles_fake\n", True),  # whole flags only
        (None, True),  # no /proc/cpuinfo (macOS): llama.cpp's own default
    ],
)
def test_extra_buffers_default_off_where_the_cpu_advertises_amx(tmp_path, cpuinfo, safe):
    from generation.backends.llamacpp import extra_buffers_safe

    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    assert extra_buffers_safe(str(path)) is safe
