"""The llama.cpp engine's edges: long token pieces, aborted decodes, closing under a busy thread."""
from __future__ import annotations

import ctypes
import logging
import threading
from contextlib import closing

import llama_cpp
import llama_cpp.llama_cpp as bindings
import pytest
from llama_cpp import _internals as internals

from generation.backends.base import BackendError, CancelFlag, SamplingParams
from generation.backends.llamacpp import LlamaCppBackend
from generation.backends.model_files import embedded_model_file

pytestmark = pytest.mark.integration
PROMPT = "List three tips for keeping a small office tidy."


def load():
    model = embedded_model_file()
    return LlamaCppBackend(
        model_path=str(model.path), model_name=model.name, model_version=model.sha256,
        n_ctx=1024, n_batch=64, n_threads=1, slots=1,
    )


@pytest.fixture(scope="module")
def backend():
    backend = load()
    yield backend
    backend.close()


def run(backend, cancel=None, max_tokens=4):
    stream = backend.generate(
        slot=0, prompt_tokens=backend.tokenize(PROMPT), params=SamplingParams(max_tokens=max_tokens, temperature=0),
        cancel=cancel or CancelFlag(),
    )
    with closing(stream):
        return [piece for piece, _ in zip(stream, range(max_tokens))]


def patch_decode(monkeypatch, fake):
    """Replace llama_decode wherever it is looked up (the package and its bindings module)."""
    monkeypatch.setattr(llama_cpp, "llama_decode", fake)
    monkeypatch.setattr(bindings, "llama_decode", fake)


def test_a_token_piece_longer_than_64_bytes_is_kept_whole(backend, monkeypatch):
    piece = "long piece ".encode() * 10  # 110 bytes; Gemma 3 has none this long, other vocabularies do

    def token_to_piece(vocab, token, buffer, length, lstrip, special):
        if length < len(piece):
            return -len(piece)
        ctypes.memmove(buffer, piece, len(piece))
        return len(piece)

    monkeypatch.setattr(llama_cpp, "llama_token_to_piece", token_to_piece)
    backend._piece_cache.pop(4242, None)
    try:
        assert backend._piece(4242) == piece
    finally:
        backend._piece_cache.pop(4242, None)


def test_an_aborted_decode_is_known_by_its_return_code_not_the_wrappers_words(backend, monkeypatch):
    cancel = CancelFlag()

    def aborted(ctx, batch):
        cancel.set()  # as when the client leaves during a prompt batch
        return 2

    def wrapper_with_other_words(self, batch):
        status = bindings.llama_decode(self.ctx, batch.batch)
        if status:
            raise RuntimeError(f"decode failed with status {status}")

    patch_decode(monkeypatch, aborted)
    monkeypatch.setattr(internals.LlamaContext, "decode", wrapper_with_other_words)
    assert run(backend, cancel) == []  # a cancelled run, not a backend failure
    patch_decode(monkeypatch, lambda ctx, batch: 1)  # no KV slot: a real failure
    with pytest.raises(BackendError, match="returned 1"):
        run(backend)
    monkeypatch.undo()
    assert run(backend) == run(backend)  # the slot still works


def test_close_never_frees_the_context_under_a_running_engine_thread(monkeypatch, caplog):
    backend = load()
    engine = backend._engine
    entered, release = threading.Event(), threading.Event()

    def stuck(ctx, batch):
        entered.set()
        release.wait(30)
        return 2

    patch_decode(monkeypatch, stuck)
    thread = engine._thread
    monkeypatch.setattr(thread, "join", lambda timeout=None: threading.Thread.join(thread, 0.2))
    errors = []

    def consume():
        try:
            run(backend)
        except BackendError as exc:
            errors.append(exc)

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        assert entered.wait(30)
        with caplog.at_level(logging.WARNING):
            backend.close()
        assert thread.is_alive()
        assert engine.context.ctx is not None and backend._model.model is not None  # nothing freed under it
        assert "left allocated" in caplog.text
    finally:
        release.set()
    thread.join(30)
    consumer.join(30)
    assert not thread.is_alive() and not consumer.is_alive()
    assert engine.context.ctx is None  # the thread freed its own context as it stopped
    assert len(errors) == 1  # its consumer was told, not left waiting
    backend._model.close()
