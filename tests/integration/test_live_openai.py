"""/v1 end to end: the official openai client against a real daphne server and the real model."""
from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.support.live import assert_never_seen, manage, server_env

pytestmark = pytest.mark.integration
MODEL = "gemma-3-270m-q4_k_m"
CANARY = "ZX-CANARY-5120 supplier Ostrava net 60"
MESSAGES = [
    {"role": "system", "content": f"Internal note: {CANARY}."},
    {"role": "user", "content": "Write a two sentence product description for a walnut serving tray."},
]


@pytest.fixture(scope="module")
def client(sluice_server):
    with openai.OpenAI(base_url=f"{sluice_server.url}/v1", api_key=sluice_server.api_key, max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def other_key(sluice_server):
    """A second API key: its requests never reuse the first key's cached prompt, so greedy
    outputs of the two compare exactly (a cached prefix may round differently)."""
    return manage(server_env(sluice_server.data_dir), "create_api_key", "--name", "openai-second").strip()


def test_models(client):
    assert [model.id for model in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).owned_by == "sluice"


def test_streamed_chat_matches_the_non_streamed_one(client, sluice_server, other_key):
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=24, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    finish = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert text.strip() and finish == ["length"]  # a base model: it does not end its turn within 24 tokens
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 24
    assert len({chunk.id for chunk in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")

    whole = client.with_options(api_key=other_key).chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=24, temperature=0
    )
    completion = whole.parse()
    assert completion.choices[0].message.content == text  # same prompt, same greedy tokens
    assert completion.usage.prompt_tokens == chunks[-1].usage.prompt_tokens and completion.usage.total_tokens > 24
    sluice_server.outputs.append(text)
    row = sluice_server.row(whole.headers["x-request-id"])
    assert (row["channel"], row["status"], row["output_tokens"]) == ("openai", "completed", 24)
    assert row["prompt_chars"] == sum(len(message["content"]) for message in MESSAGES)


def test_legacy_completion_is_the_native_generation(client, sluice_server, other_key):
    prompt = "Write a two sentence product description for a cedar cutting board:"
    completion = client.completions.create(model=MODEL, prompt=prompt, max_tokens=16, temperature=0)
    native = httpx.post(
        f"{sluice_server.url}/api/v1/generations", headers={"Authorization": f"Bearer {other_key}"}, timeout=60,
        json={"prompt": prompt, "max_tokens": 16, "temperature": 0, "stream": False},
    ).json()
    assert completion.choices[0].text == native["text"] and completion.usage.completion_tokens == 16
    assert completion.usage.prompt_tokens == native["usage"]["prompt_tokens"]  # the prompt as sent, no template
    sluice_server.outputs.append(native["text"])


def test_errors_reach_the_client_as_openai_errors(client, sluice_server):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as caught:
        tool = {"type": "function", "function": {"name": "lookup"}}
        client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=[tool])
    assert caught.value.param == "tools"
    with pytest.raises(openai.BadRequestError) as caught:  # Gemma's template: roles must alternate
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": CANARY}] * 2)
    assert caught.value.param == "messages" and CANARY not in str(caught.value.body)
    card = {"role": "user", "content": f"{CANARY} Charge card 4111 1111 1111 1111."}
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(model=MODEL, messages=[card])
    assert caught.value.param == "messages[0].content" and "4111" not in str(caught.value.body)
    bad_key = openai.OpenAI(base_url=f"{sluice_server.url}/v1", api_key="sluice_00000000_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad_key.models.list()
    assert caught.value.code == "invalid_api_key"


def test_hanging_up_a_stream_cancels_the_run(client, sluice_server):
    response = client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=400, temperature=0.7, seed=3, stream=True
    )
    with response as streamed:
        request_id = streamed.headers["x-request-id"]
        for count, _ in enumerate(streamed.parse(), 1):
            if count >= 5:
                break  # leaving the block closes the connection
    row = sluice_server.row(request_id)
    assert (row["status"], row["cancel_reason"], row["channel"]) == ("cancelled", "client_disconnect", "openai")
    assert row["tokens_after_cancel"] <= 1 and row["output_tokens"] < 60
    follow_up = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2)  # the slot is free again
    assert follow_up.choices[0].finish_reason == "length"


def test_a_stream_the_server_cancels_raises_an_api_error_in_the_client(client, sluice_server):
    response = client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=400, temperature=0.7, seed=5, stream=True
    )
    with response as streamed, pytest.raises(openai.APIError) as caught:
        request_id, cancelled = streamed.headers["x-request-id"], False
        for chunk in streamed.parse():
            if chunk.choices and chunk.choices[0].delta.content and not cancelled:
                cancel_url = f"{sluice_server.url}/api/v1/generations/{request_id}/cancel"
                cancelled = httpx.post(cancel_url, headers=sluice_server.headers()).status_code == 202
    assert cancelled and (caught.value.code, caught.value.type) == ("cancelled", "invalid_request_error")
    assert sluice_server.row(request_id)["cancel_reason"] == "client_cancel"


def test_no_message_or_output_reaches_logs_or_database(sluice_server):
    """Runs last in this module: checks everything the tests above sent and received."""
    time.sleep(0.3)
    log = sluice_server.log_path.read_text(errors="replace")
    dump = sluice_server.database_dump()
    assert "openai" in dump and '"channel":"openai"' in log.replace(" ", "")
    assert_never_seen(f"{log}\n{dump}", [CANARY, "Ostrava", "walnut serving tray"], sluice_server.outputs)
