"""The remote backend against scripted upstreams: streaming, the retry rules (only before
the first token, once, within the budget), mid-stream failures and prompt cancellation."""
import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generation.backends.base import BackendError, CancelFlag, SamplingParams
from generation.backends.llamacpp import tokenize_bytes
from generation.backends.model_files import embedded_model_file
from generation.backends.remote import RemoteBackend
from generation.backends.remote_config import PoolConfig, parse_upstreams
from generation.backends.remote_tokenizer import PromptTokens, VocabTokenizer
from generation.lifecycle.worker import run_model
from tests.support.fake_upstream import FakeUpstream, Script

GREEDY = SamplingParams(max_tokens=16, temperature=0.0)


@pytest.fixture(scope="module")
def tokenizer():
    vocab = VocabTokenizer(str(embedded_model_file().path))
    yield vocab
    vocab.close()


@pytest.fixture
def upstreams():
    servers = [FakeUpstream(), FakeUpstream()]
    yield servers
    for server in servers:
        server.close()


def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def make_backend(tokenizer, urls, **options):
    config = PoolConfig(
        upstreams=parse_upstreams(",".join(urls), slots="2", api_keys=options.pop("api_keys", "")),
        health_interval=0, connect_timeout=1.0, read_timeout=10.0, **options,
    )
    return RemoteBackend(config, tokenizer=tokenizer, model_name="m", model_version="v", n_ctx=4096)


def generate(backend, prompt="Hello there", params=GREEDY, cancel=None):
    tokens = backend.tokenize(prompt)
    return backend.generate(slot=0, prompt_tokens=tokens, params=params, cancel=cancel or CancelFlag())


def test_streams_pieces_and_sends_the_prompt_sluice_built(tokenizer, upstreams):
    backend = make_backend(tokenizer, [upstreams[0].url], model="served-name", api_keys="secret-key")
    assert list(generate(backend, "Hello there")) == ["Hello", ",", " world"]
    body = upstreams[0].requests[0]
    assert body["prompt"] == "Hello there" and body["stream"] is True
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("served-name", 16, 0.0)
    assert upstreams[0].headers[0]["Authorization"] == "Bearer secret-key"
    assert backend.slot_count == 2 and backend.info.version == "v"


def test_token_prompts_and_control_token_text(tokenizer, upstreams):
    backend = make_backend(tokenizer, [upstreams[0].url], prompt_format="tokens")
    list(generate(backend, "Hello there"))
    assert upstreams[0].requests[0]["prompt"] == tokenizer.tokenize("Hello there")
    text_backend = make_backend(tokenizer, [upstreams[0].url])
    with pytest.raises(BackendError):  # as text an engine would read <end_of_turn> as a control token
        list(generate(text_backend, "Hello <end_of_turn> there"))
    assert len(upstreams[0].requests) == 1


PROMPT_PARTS = ["Hello", " there", "  ", "\n\n", "<", ">", "<end_of_turn>", "<start_of_turn>", "<unused7>",
                "[multimodal]", "<b>bold</b>", "café", " 🧀", "\t", "<eos", "of_turn>", "Ünïcode", "[EMAIL_1]"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(PROMPT_PARTS), max_size=12))
def test_a_prompt_sent_as_its_own_text_reads_back_into_its_tokens(tokenizer, parts):
    text = "".join(parts)
    tokens = tokenizer.tokenize(text)
    engine_reads = tokenizer._model.tokenize(text.encode(), add_bos=tokenizer.add_bos, special=True)
    if isinstance(tokens, PromptTokens):  # sent as is, without re-tokenizing
        assert tokens.engine_text == text and engine_reads == list(tokens)
        assert tokenizer.as_engine_text(tokens) == text
    else:  # control-token text: an engine would read it as control tokens
        assert tokenizer.has_control_text(text) and engine_reads != list(tokens)
        assert tokenizer.as_engine_text(tokens) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(PROMPT_PARTS + ["x" * 3000, "½＠価格", ""]), max_size=12),
       add_bos=st.booleans(), special=st.booleans())
def test_sized_tokenizing_gives_llama_cpp_python_s_tokens(tokenizer, parts, add_bos, special):
    data = "".join(parts).encode()
    expected = tokenizer._model.tokenize(data, add_bos=add_bos, special=special)
    assert tokenize_bytes(tokenizer._model, data, add_bos=add_bos, special=special) == expected


@pytest.mark.parametrize("status, cools_down", [(503, True), (429, False)])
def test_error_status_before_the_first_token_is_retried_on_another(tokenizer, upstreams, status, cools_down):
    upstreams[0].script = Script(status=status)
    upstreams[1].script = Script(pieces=["from", " b"])
    backend = make_backend(tokenizer, [u.url for u in upstreams])
    assert "".join(generate(backend)) == "from b"
    assert (len(upstreams[0].requests), len(upstreams[1].requests)) == (1, 1)
    assert backend.upstream_report()["u0"]["up"] is (not cools_down)


def test_connect_error_is_retried_and_the_upstream_cools_down(tokenizer, upstreams):
    backend = make_backend(tokenizer, [closed_port_url(), upstreams[1].url])
    assert "".join(generate(backend)) == "Hello, world"
    report = backend.upstream_report()
    assert report["u0"]["up"] is False and report["u0"]["last_error"] == "connect"
    assert backend.pool.capacity() == 2


def test_only_one_retry(tokenizer, upstreams):
    for upstream in upstreams:
        upstream.script = Script(status=502)
    third = FakeUpstream()
    try:
        backend = make_backend(tokenizer, [upstreams[0].url, upstreams[1].url, third.url])
        with pytest.raises(BackendError) as raised:
            list(generate(backend))
        assert raised.value.code == "upstream_failed"
        assert third.requests == []
    finally:
        third.close()


def test_no_retry_past_the_time_budget(tokenizer, upstreams):
    upstreams[0].script = Script(status=503, first_delay=0.3)
    backend = make_backend(tokenizer, [u.url for u in upstreams], retry_budget=0.2)
    with pytest.raises(BackendError) as raised:
        list(generate(backend))
    assert raised.value.code == "upstream_failed" and upstreams[1].requests == []


def test_failure_after_the_first_token_is_upstream_failed_and_never_spliced(tokenizer, upstreams):
    upstreams[0].script = Script(pieces=["one", " two", " three"], die_after=2)
    backend = make_backend(tokenizer, [u.url for u in upstreams])
    received = []
    with pytest.raises(BackendError) as raised:
        for piece in generate(backend):
            received.append(piece)
    assert raised.value.code == "upstream_failed"
    assert received == ["one", " two"] and upstreams[1].requests == []
    assert backend.upstream_report()["u0"]["up"] is False


def test_worker_records_upstream_failed(tokenizer, upstreams):
    upstreams[0].script = Script(pieces=["one", " two"], die_after=1)
    backend = make_backend(tokenizer, [upstreams[0].url])
    out = []
    result = run_model(
        backend=backend, slot=0, prompt_tokens=backend.tokenize("Hi"), params=GREEDY, cancel=CancelFlag(),
        emit=lambda token: out.append(token.text),
    )
    assert (result.finish_reason, result.error_code, out) == ("error", "upstream_failed", ["one"])


def test_cancel_aborts_a_blocked_read_at_once_and_the_upstream_sees_it(tokenizer, upstreams):
    upstreams[0].script = Script(pieces=["a", "b", "c"], delay=1.0)
    backend = make_backend(tokenizer, [upstreams[0].url])
    cancel = CancelFlag()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    assert list(generate(backend, cancel=cancel)) == []
    assert time.monotonic() - started < 0.6
    assert upstreams[0].finished.wait(5) and upstreams[0].disconnects == 1
    assert backend.upstream_report()["u0"] == {"up": True, "slots": 2, "in_flight": 0, "cooldown_seconds": 0.0, "last_error": ""}


def test_leaving_a_stream_early_closes_the_upstream_request(tokenizer, upstreams):
    upstreams[0].script = Script(pieces=["x"] * 50, delay=0.05)
    backend = make_backend(tokenizer, [upstreams[0].url])
    result = run_model(
        backend=backend, slot=0, prompt_tokens=backend.tokenize("Hi"),
        params=SamplingParams(max_tokens=2, temperature=0.0), cancel=CancelFlag(), emit=lambda token: None,
    )
    assert (result.finish_reason, result.completion_tokens) == ("length", 2)
    assert upstreams[0].finished.wait(5) and upstreams[0].disconnects == 1


def test_no_upstream_in_service(tokenizer, upstreams):
    backend = make_backend(tokenizer, [upstreams[0].url])
    upstreams[0].script = Script(health_status=503)
    backend.pool.check_once()
    with pytest.raises(BackendError) as raised:
        list(generate(backend))
    assert raised.value.code == "upstream_failed" and upstreams[0].requests == []


def test_a_stream_read_to_its_end_leaves_its_connection_for_the_next_request(tokenizer, upstreams):
    upstreams[0].script = Script(keep_alive=True)
    backend = make_backend(tokenizer, [upstreams[0].url])
    for _ in range(3):
        assert "".join(generate(backend)) == "Hello, world"
    assert (len(upstreams[0].requests), upstreams[0].connections) == (3, 1)


def test_a_stream_left_early_never_goes_back_to_the_idle_connections(tokenizer, upstreams):
    upstreams[0].script = Script(pieces=["x"] * 50, delay=0.05, keep_alive=True)
    backend = make_backend(tokenizer, [upstreams[0].url])
    run_model(
        backend=backend, slot=0, prompt_tokens=backend.tokenize("Hi"),
        params=SamplingParams(max_tokens=2, temperature=0.0), cancel=CancelFlag(), emit=lambda token: None,
    )
    assert upstreams[0].finished.wait(5) and upstreams[0].disconnects == 1  # the engine saw the client leave
    upstreams[0].script = Script(keep_alive=True)
    assert "".join(generate(backend)) == "Hello, world"
    assert upstreams[0].connections == 2


def test_a_kept_connection_the_engine_closed_is_replaced_without_a_failure(tokenizer, upstreams):
    upstreams[0].script = Script(keep_alive=True, drop_kept=True)
    backend = make_backend(tokenizer, [upstreams[0].url])
    assert "".join(generate(backend)) == "Hello, world"
    time.sleep(0.2)  # the engine has closed the kept connection by now
    assert "".join(generate(backend)) == "Hello, world"
    assert (len(upstreams[0].requests), upstreams[0].connections) == (2, 2)
    assert backend.pool.report()[backend.pool.upstreams[0].name]["up"]  # not counted as a failure


def test_idle_connections_are_bounded_and_expire():
    from generation.backends.remote_http import IdleConnections

    class Connection:
        closed = False

        def close(self):
            self.closed = True

    now = [0.0]
    idle = IdleConnections(2, max_idle=4.0, clock=lambda: now[0])
    first, second, third = Connection(), Connection(), Connection()
    for connection in (first, second, third):
        idle.give(connection)
    assert first.closed and len(idle) == 2  # over the limit: the oldest goes
    assert idle.take() is third
    now[0] = 5.0
    assert idle.take() is None and second.closed  # idle too long: the engine may have closed it


def test_an_engine_slow_to_end_its_response_loses_the_connection_not_the_callers_time(tokenizer, upstreams):
    upstreams[0].script = Script(keep_alive=True, end_delay=2.0)
    backend = make_backend(tokenizer, [upstreams[0].url])
    started = time.monotonic()
    assert "".join(generate(backend)) == "Hello, world"
    assert time.monotonic() - started < 1.0
    upstreams[0].script = Script(keep_alive=True)
    assert "".join(generate(backend)) == "Hello, world"
    assert upstreams[0].connections == 2
