"""OpenAI's response objects for one /v1 request: the model list, the non-streaming body,
and the JSON chunks of the stream (generation.http.sse frames them)."""
from __future__ import annotations

import time

from generation.backends.base import ModelInfo
from generation.http.errors import openai_error_object
from generation.http.responses import failure
from generation.http.sse import DONE
from generation.lifecycle.events import Accepted, Delta, Done, Event

STARTED_AT = int(time.time())  # a model object's `created`: when this server process started


def model_object(info: ModelInfo) -> dict:
    return {"id": info.name, "object": "model", "created": STARTED_AT, "owned_by": "sluice"}


def model_list(info: ModelInfo) -> dict:
    return {"object": "list", "data": [model_object(info)]}


def usage(done: Done) -> dict:
    prompt, completion = done.usage["prompt_tokens"], done.usage["completion_tokens"]
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class Reply:
    """Shapes one request's answer: a chat completion ("chatcmpl-<request id>") or a legacy
    text completion ("cmpl-<request id>"), whole or as stream chunks."""

    def __init__(self, *, chat: bool, request_id, info: ModelInfo, include_usage: bool = False) -> None:
        self.chat = chat
        self.include_usage = include_usage
        self._head = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{request_id}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": info.name,
            "system_fingerprint": f"fp_{info.version[:12]}",
        }

    def body(self, text: str, done: Done) -> dict:
        """The non-streaming response."""
        return {**self._head, "choices": [self._choice(text, done.finish_reason, whole=True)], "usage": usage(done)}

    def payloads(self, event: Event) -> list[dict | str]:
        """The stream's chunks for one event. A finished run ends with a finish_reason chunk,
        the usage chunk when asked, and DONE; any other end with one error object and no DONE."""
        if isinstance(event, Accepted):
            return [self._chunk(self._choice("", None, role=True))] if self.chat else []
        if isinstance(event, Delta):
            return [self._chunk(self._choice(event.text, None))]
        if isinstance(event, Done):
            chunks = [self._chunk(self._choice("", event.finish_reason))]
            if self.include_usage:
                chunks.append(self._chunk(None, usage(event)))
            return [*chunks, DONE]
        if event.terminal:
            failed = failure(event)
            return [{"error": openai_error_object(failed.status, failed.code, failed.message, **failed.details)}]
        return []  # queued / started: OpenAI's stream has no such chunks; keep-alives cover the wait

    def _chunk(self, choice: dict | None, usage_: dict | None = None) -> dict:
        chunk = {**self._head, "choices": [choice] if choice else []}
        if self.chat:
            chunk["object"] = "chat.completion.chunk"
        if self.include_usage:
            chunk["usage"] = usage_
        return chunk

    def _choice(self, text: str, finish_reason: str | None, *, role: bool = False, whole: bool = False) -> dict:
        if not self.chat:
            return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        if whole:
            message = {"role": "assistant", "content": text, "refusal": None}
            return {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        delta = {"role": "assistant", "content": ""} if role else ({"content": text} if text else {})
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
