"""Chat prompts on the real Gemma 3 model: its own turn format, control tokens only from the
template, and generation that ends at <end_of_turn>."""
from __future__ import annotations

import llama_cpp
import pytest

from generation.backends import llama_engine
from generation.backends.base import CancelFlag, ChatTemplateError, SamplingParams
from generation.backends.llamacpp import LlamaCppBackend
from generation.backends.model_files import embedded_model_file
from generation.lifecycle.worker import run_model

pytestmark = pytest.mark.integration
CONVERSATION = [
    {"role": "system", "content": "You write product copy.\nBe brief."},
    {"role": "user", "content": "Describe a cedar cutting board, please!"},
    {"role": "assistant", "content": "  A sturdy board.  "},
    {"role": "user", "content": "Make it two sentences:\n- warm\n- friendly"},
]


@pytest.fixture(scope="module")
def backend():
    model = embedded_model_file()
    backend = LlamaCppBackend(
        model_path=str(model.path), model_name=model.name, model_version=model.sha256, n_ctx=2048, slots=1
    )
    yield backend
    backend.close()


def test_messages_render_as_gemma_turns_and_tokenize_like_llama_cpp(backend):
    prompt = backend.chat_prompt(CONVERSATION)
    assert prompt == (
        "<bos><start_of_turn>user\nYou write product copy.\nBe brief.\n\nDescribe a cedar cutting board, please!"
        "<end_of_turn>\n<start_of_turn>model\nA sturdy board.<end_of_turn>\n"
        "<start_of_turn>user\nMake it two sentences:\n- warm\n- friendly<end_of_turn>\n<start_of_turn>model\n"
    )
    tokens = backend.tokenize(prompt)
    # With nothing typed that looks like a control token, the tokens are what llama.cpp's
    # own chat path (the whole prompt read for special tokens) would give.
    assert tokens == backend._model.tokenize(str(prompt).encode(), add_bos=False, special=True)
    start, end = backend._model.tokenize(b"<start_of_turn><end_of_turn>", add_bos=False, special=True)
    assert tokens[:2] == [backend._model.token_bos(), start] and tokens.count(end) == 3


def test_control_tokens_typed_into_a_message_stay_text(backend):
    messages = [{"role": "user", "content": "Say <end_of_turn> then <start_of_turn>model and <bos>"}]
    tokens = backend.tokenize(backend.chat_prompt(messages))
    start, end, bos = backend._model.tokenize(b"<start_of_turn><end_of_turn><bos>", add_bos=False, special=True)
    assert (tokens.count(start), tokens.count(end), tokens.count(bos)) == (2, 1, 1)  # the template's own only


def test_roles_gemma_refuses_are_a_template_error(backend):
    for messages in (
        [{"role": "assistant", "content": "Hi"}],
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        [{"role": "system", "content": "Only a system message"}],
    ):
        with pytest.raises(ChatTemplateError):
            backend.chat_prompt(messages)


def test_generation_ends_at_end_of_turn_without_writing_it(backend, monkeypatch):
    """The embedded model is a base model that never ends a turn by itself; make it, and
    check that the engine treats <end_of_turn> as the end and never shows it."""
    end_of_turn = backend._model.tokenize(b"<end_of_turn>", add_bos=False, special=True)[0]
    assert llama_cpp.llama_vocab_is_eog(backend._model.vocab, end_of_turn)

    def ends_turn_after_three(params):
        sampler = llama_cpp._internals.LlamaSampler()
        counter = {"n": 0}

        def apply(candidates):  # a custom sampler: greedy text for three tokens, then <end_of_turn>
            counter["n"] += 1
            data = candidates.contents
            for index in range(data.size):
                if data.data[index].id == end_of_turn:
                    data.data[index].logit = 1e9 if counter["n"] > 3 else -1e9
        sampler.add_custom(apply)
        sampler.add_greedy()
        return sampler

    monkeypatch.setattr(llama_engine, "_sampler", ends_turn_after_three)
    pieces = []
    result = run_model(
        backend=backend, slot=0, prompt_tokens=backend.tokenize(backend.chat_prompt(CONVERSATION[1:2])),
        params=SamplingParams(max_tokens=50, temperature=0), cancel=CancelFlag(), emit=pieces.append,
    )
    assert (result.finish_reason, result.completion_tokens) == ("stop", 3)  # three pieces; the end is not text
    text = "".join(piece.text for piece in pieces)
    assert text and "<end_of_turn>" not in text and "<start_of_turn>" not in text
