"""Greedy and seeded output of the real model does not depend on what a slot's prefix cache
held from earlier requests (docs/api.md: repeatable when the request runs alone)."""
from __future__ import annotations

from contextlib import closing
from itertools import islice

import pytest

from generation.backends.base import CancelFlag, SamplingParams
from generation.backends.llamacpp import LlamaCppBackend
from generation.backends.model_files import embedded_model_file

pytestmark = pytest.mark.integration
N_BATCH = 64
GREEDY = SamplingParams(max_tokens=32, temperature=0)
SEEDED = SamplingParams(max_tokens=32, temperature=0.8, seed=7)
HOT = SamplingParams(max_tokens=16, temperature=0.9)  # unseeded: different every time
PROMPTS = [
    "Write a short, friendly product description for a bamboo desk organiser:",
    "Write a short, friendly product description for a ceramic coffee mug with a lid:",
    "List three tips for keeping a small office tidy.",
]
DOCUMENT = (
    "Supplier terms, revision 4. Payment is due within 30 days of the invoice date. Delivery is free "
    "for orders over 500 euros; smaller orders pay a flat fee of 12 euros. Goods may be returned within "
    "14 days if unused and in their original packaging. Damaged goods must be reported within 48 hours "
    "with photographs. Prices are fixed for the calendar quarter and exclude VAT. Orders placed before "
    "noon ship the same working day. Bulk orders above 200 units need two weeks' notice. "
) * 3
QUESTIONS = ["\nQuestion: how long do I have to pay?\nAnswer:", "\nQuestion: what does delivery cost?\nAnswer:"]


# One sequence: every earlier run went through the cache this run reads. Two contexts: runs
# are placed on either by reusable prefix or least recent use (as on a batched context's sequences).
@pytest.fixture(scope="module", params=[("batched", 1), ("contexts", 2)], ids=lambda p: f"{p[0]}-{p[1]}")
def backend(request):
    engine, slots = request.param
    model = embedded_model_file()
    backend = LlamaCppBackend(
        model_path=str(model.path), model_name=model.name, model_version=model.sha256,
        n_ctx=2048, n_batch=N_BATCH, n_threads=1, slots=slots, engine=engine,
    )
    yield backend
    backend.close()


def generate(backend, prompt, *, owner, params, slot=0):
    stream = backend.generate(
        slot=slot, prompt_tokens=backend.tokenize(prompt), params=params, cancel=CancelFlag(), cache_owner=owner
    )
    with closing(stream):
        return "".join(islice(stream, params.max_tokens))


def fresh(backend, prompt, params):
    """The reference: a run that reuses nothing (an anonymous caller never reuses the cache)."""
    return generate(backend, prompt, owner=None, params=params)


@pytest.mark.parametrize("params", [GREEDY, SEEDED], ids=["greedy", "seeded"])
def test_short_prompts_repeat_whatever_ran_before_on_the_slot(backend, params):
    mismatches = []
    for index, prompt in enumerate(PROMPTS):
        expected = fresh(backend, prompt, params)
        others = [other for other in PROMPTS if other != prompt]
        interleavings = {
            "same prompt again": lambda: None,
            "hot sample of another prompt": lambda: generate(backend, others[0], owner="key:r", params=HOT),
            "greedy run of a shared-prefix prompt": lambda: generate(backend, others[1], owner="key:r", params=GREEDY),
        }
        for name, before in interleavings.items():
            generate(backend, prompt, owner="key:r", params=params)  # leaves this prompt in the cache
            before()
            if generate(backend, prompt, owner="key:r", params=params) != expected:
                mismatches.append((index, name))
    assert mismatches == []


@pytest.mark.parametrize("params", [GREEDY, SEEDED], ids=["greedy", "seeded"])
def test_long_shared_prefix_is_reused_and_output_repeats(backend, params):
    prompts = [DOCUMENT + question for question in QUESTIONS]
    lengths = [len(backend.tokenize(prompt)) for prompt in prompts]
    assert min(lengths) > 3 * N_BATCH  # several whole chunks to reuse
    expected = [fresh(backend, prompt, params) for prompt in prompts]
    for first, second in [(0, 1), (1, 0), (0, 0)]:
        generate(backend, prompts[first], owner="key:d", params=HOT)
        assert generate(backend, prompts[second], owner="key:d", params=params) == expected[second]
        evaluated = backend.last_prompt_evaluated(0)
        assert evaluated <= N_BATCH  # the document came from the cache
        assert (lengths[second] - evaluated) % N_BATCH == 0  # cut on the chunk grid of a fresh run


def test_sampled_requests_reuse_all_but_the_last_prompt_token(backend):
    prompt = PROMPTS[0]
    generate(backend, prompt, owner="key:s", params=HOT)
    generate(backend, prompt, owner="key:s", params=HOT)
    assert backend.last_prompt_evaluated(0) == 1  # no repeatability to keep: the whole cached prefix
    assert generate(backend, prompt, owner="key:s", params=GREEDY) == fresh(backend, prompt, GREEDY)
