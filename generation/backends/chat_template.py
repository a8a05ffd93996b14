"""Chat prompts from a model's Jinja chat template, with each message's text marked so a
backend can keep control tokens typed into a message as plain text."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Self

import jinja2
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from .base import ChatTemplateError

# Unicode noncharacters are reserved for a program's internal use: they bracket message text
# while the template renders, and are replaced in what callers send.
OPEN, CLOSE = "\ufdd0", "\ufdd1"

# Gemma 3's own template (google/gemma-3-*-it), for GGUF files that do not carry one.
GEMMA3_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""
FALLBACK_TEMPLATES = {"gemma3": GEMMA3_TEMPLATE}


class ChatPrompt(str):
    """A rendered chat prompt; `parts` splits it into (text, is_message_text) in order."""

    parts: tuple[tuple[str, bool], ...]

    def __new__(cls, parts: Sequence[tuple[str, bool]]) -> Self:
        prompt = super().__new__(cls, "".join(text for text, _ in parts))
        prompt.parts = tuple((text, is_message) for text, is_message in parts if text)
        return prompt


class ChatTemplate:
    """Renders messages with a Jinja chat template (llama-cpp-python's formatter), ending
    with the assistant's turn opened. Leading and trailing spaces of messages are trimmed."""

    def __init__(self, template: str, *, bos_token: str = "", eos_token: str = "") -> None:
        self._source = template
        self._formatter = Jinja2ChatFormatter(template=template, bos_token=bos_token, eos_token=eos_token)

    def render(self, messages: Sequence[Mapping[str, str]]) -> ChatPrompt:
        """The prompt, or ChatTemplateError when the template refuses or drops a message."""
        marked = [{"role": message["role"], "content": _marked(message["content"])} for message in messages]
        try:
            rendered = self._formatter(messages=marked).prompt
        except ValueError as exc:  # the template's raise_exception()
            raise ChatTemplateError(self._refusal(str(exc))) from None
        except (jinja2.TemplateError, LookupError, TypeError, AttributeError):
            # A template is the model author's code: what it trips over is this conversation's shape.
            raise ChatTemplateError("The model's chat template cannot render these messages.") from None
        parts = _split(rendered)
        if parts is None or sum(is_message for _, is_message in parts) != len(messages):
            raise ChatTemplateError(
                "The model's chat template does not use every message as sent "
                "(for example a system message with no user message after it)."
            )
        return ChatPrompt(parts)

    def _refusal(self, reason: str) -> str:
        # Only a sentence written in the template itself is repeated: it cannot quote a message.
        if reason and (f'"{reason}"' in self._source or f"'{reason}'" in self._source):
            return f"The model's chat template refuses this conversation: {reason}"
        return "The model's chat template refuses this conversation."


def _marked(content: str) -> str:
    text = content.strip().replace(OPEN, "\ufffd").replace(CLOSE, "\ufffd")
    return f"{OPEN}{text}{CLOSE}"


def _split(rendered: str) -> list[tuple[str, bool]] | None:
    """(text, is_message_text) pieces, or None when the markers are not well nested."""
    parts: list[tuple[str, bool]] = []
    rest = rendered
    while rest:
        head, opened, rest = rest.partition(OPEN)
        if CLOSE in head:
            return None
        parts.append((head, False))
        if not opened:
            break
        body, closed, rest = rest.partition(CLOSE)
        if not closed or OPEN in body:
            return None
        parts.append((body, True))
    return parts
