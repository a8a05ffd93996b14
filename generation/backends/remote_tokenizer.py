"""The model's tokenizer and chat template without its weights, for the remote backend:
the GGUF opened in llama.cpp's vocab-only mode.

Why not the engine's /tokenize endpoint: a local vocabulary gives the same tokens as a
llama.cpp engine loading that file, costs no network round trip before the first token,
keeps prompt-size checks working while every upstream is down, and carries the chat
template in the same file. vLLM and TGI serve the same model's tokenizer, so a GGUF of
that model gives the same tokens there too."""
from __future__ import annotations

import threading

import llama_cpp
from llama_cpp import _internals as internals

from .base import BackendError
from .chat_template import FALLBACK_TEMPLATES, ChatTemplate
from .llamacpp import _init_llama_backend, token_piece, tokenize_bytes, tokenize_prompt


class PromptTokens(list):
    """A plain-text prompt's tokens with that text, which an engine reads back into exactly
    these tokens: the text holds no control-token text, the only thing an engine (which
    parses control tokens in a prompt) reads differently from Sluice's tokenizer."""

    __slots__ = ("engine_text",)

    def __init__(self, tokens: list[int], engine_text: str) -> None:
        super().__init__(tokens)
        self.engine_text = engine_text


class VocabTokenizer:
    """Tokens exactly as the llama.cpp backend makes them; see LlamaCppBackend.tokenize."""

    def __init__(self, model_path: str) -> None:
        _init_llama_backend()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        try:
            self._model = internals.LlamaModel(path_model=model_path, params=params, verbose=False)
        except ValueError as exc:
            raise BackendError("could not load the tokenizer from the model file") from exc
        self._lock = threading.Lock()
        self._pieces: dict[int, bytes] = {}
        self._control_texts = _control_texts(self._model.vocab)
        self._control_lengths = sorted({len(text) for text in self._control_texts})
        self._control_starts = "".join(sorted({text[0] for text in self._control_texts}))
        metadata = self._model.metadata()
        architecture = metadata.get("general.architecture", "")
        self.context_length = int(metadata.get(f"{architecture}.context_length", 0) or 0)
        self.bos = self._model.token_bos()
        self.add_bos = self._model.add_bos_token() and self.bos >= 0
        template = metadata.get("tokenizer.chat_template") or FALLBACK_TEMPLATES.get(architecture)
        eos = self._model.token_eos()
        self.chat_template = (
            ChatTemplate(
                template,
                bos_token=self._model.token_get_text(self.bos) if self.bos >= 0 else "",
                eos_token=self._model.token_get_text(eos) if eos >= 0 else "",
            )
            if template
            else None
        )

    def tokenize(self, text: str) -> list[int]:
        tokens = tokenize_prompt(self._model, text)
        if type(text) is str and not self.has_control_text(text):  # a ChatPrompt is tokenized by parts
            return PromptTokens(tokens, text)
        return tokens

    def has_control_text(self, text: str) -> bool:
        """Whether `text` holds the text of a control (or unknown) token anywhere."""
        for start in self._control_starts:
            at = text.find(start)
            while at >= 0:
                if any(text[at : at + length] in self._control_texts for length in self._control_lengths):
                    return True
                at = text.find(start, at + 1)
        return False

    def as_engine_text(self, tokens: list[int]) -> str | None:
        """The prompt as text an engine reads back into exactly `tokens` (it adds the BOS and
        parses control tokens in text), or None when no such text exists: control-token
        text typed by a user would become control tokens there. Tokens `tokenize` made from a
        text without control-token text carry that text; others are rebuilt from their
        pieces, and that text is tokenized again to check it."""
        if isinstance(tokens, PromptTokens):
            return tokens.engine_text
        tokens = list(tokens)
        body = tokens[1:] if self.add_bos and tokens[:1] == [self.bos] else tokens
        with self._lock:
            for token in body:
                if token not in self._pieces:
                    self._pieces[token] = token_piece(self._model.vocab, token, special=True)
            raw = b"".join(self._pieces[token] for token in body)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        again = tokenize_bytes(self._model, text.encode("utf-8"), add_bos=self.add_bos, special=True)
        return text if again == list(tokens) else None

    def close(self) -> None:
        self._model.close()


def _control_texts(vocab) -> frozenset[str]:
    """The texts llama.cpp reads as control tokens only when asked to parse them (its
    tokenizer_st_partition skips CONTROL and UNKNOWN tokens unless parse_special)."""
    kinds = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
    texts = (
        llama_cpp.llama_vocab_get_text(vocab, token).decode("utf-8", errors="replace")
        for token in range(llama_cpp.llama_vocab_n_tokens(vocab))
        if llama_cpp.llama_vocab_get_attr(vocab, token) & kinds
    )
    return frozenset(text for text in texts if text)
