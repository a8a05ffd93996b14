"""Leak audit through the stack (issue 13): a distinct canary in every field, header and
parameter, on every path (success, validation failure, redaction rejection, rate limit,
queue and stall timeouts, cancellation, disconnect, resume, backend failure, a worker crash,
kill -9) of the native API, /v1, the editor pages and the WebSocket, and canaries in the
model's output; then everything the stack wrote (nginx's and Sluice's logs and files, a
pg_dump, the sessions decoded, every Redis key, /metrics, health, the admin pages, the
history page, every error body and error event, the PostgreSQL server log) holds none of
them, in any case, URL- or base64-encoded.

The stack is this module's own: the scripted backend (tests.stack.helpers.
StackScriptedBackend) writes a canary as output and fails on demand, and timeouts are short."""
from __future__ import annotations

import base64
import json
import os
import re
import secrets
import threading
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field

import httpx
import pytest

from deploy.localstack import Stack
from deploy.localstack.nginx import NGINX
from generation.records.api_keys import hash_api_key
from tests.stack.helpers import admin_session, occurrences, owner_of, postgres_log_size, row, what_the_stack_wrote
from tests.support.sse import messages

pytestmark = [pytest.mark.stack]
API = "/api/v1/generations"
CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
TERMINAL = {"done", "cancelled", "error"}
INPUT_CARD, OUTPUT_CARD = "4111 1111 1111 1111", "4000 0566 5566 5556"


class Canaries:
    """Every canary made, each with a random tag of its own: `made[value] = "path/where"`."""

    def __init__(self) -> None:
        self.made: dict[str, str] = {}

    def __call__(self, path: str, where: str) -> str:
        value = f"CANARY-{path}-{where}-{secrets.token_hex(6)}"
        self.made[value] = f"{path}/{where}"
        return value

    def needles(self, *, in_url: bool) -> list[tuple[str, str, bool]]:
        """(what, needle, case-sensitive) for the canaries sent in URLs and client headers
        (`in_url`), or for all the others: each canary whole and by its tag alone (any case;
        a tag is hex, which URL encoding leaves alone), and base64-encoded at each alignment."""
        found = []
        for value, where in self.made.items():
            if (where.rsplit("/", 1)[1] in IN_URL) != in_url:
                continue
            found += [(where, value.lower(), False), (f"{where} (tag)", value.rsplit("-", 1)[1], False)]
            for pad in range(3):
                for encode in (base64.b64encode, base64.urlsafe_b64encode):
                    encoded = encode(b"\0" * pad + value.encode()).decode()
                    found.append((f"{where} (base64)", encoded[pad + 1 : -4], True))
        if not in_url:
            for card in (INPUT_CARD, OUTPUT_CARD):
                found += [(f"card {card}", card, False), (f"card {card}", card.replace(" ", ""), False)]
        return found

    def strays(self, sources: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
        """Anything that looks like a canary but is none of those made whole (cut, changed)."""
        known = {value.lower() for value in self.made}
        found = []
        for name, text in sources:
            for match in re.finditer(r"canary-[a-z0-9-]*", text.lower()):
                if match.group() not in known:
                    found.append(("a canary, changed", name, text[max(0, match.start() - 60) : match.end() + 60]))
        return found


# Kinds of canary sent in the URL (query names and values, ids in the path) or in the
# User-Agent and Referer headers, which access logs record by design: their own test below.
IN_URL = {"query-value", "query-name", "id", "last-event-id", "user-agent", "referer"}
CANARY = Canaries()
OUTPUT = CANARY("output", "model-text")
CRASH_MESSAGE = CANARY("crash", "exception-message")
SCRIPT = ["Shelf", " copy", ": ", OUTPUT, " ", "[EMAIL_1]", " card", f" {OUTPUT_CARD}", " done."]
SETTINGS = {
    "SLUICE_BACKEND": "tests.stack.helpers.StackScriptedBackend",
    "SLUICE_TEST_SCRIPT": json.dumps(SCRIPT),
    "SLUICE_TEST_TOKEN_DELAY": "0.03",
    "SLUICE_TEST_CRASH_MESSAGE": CRASH_MESSAGE,
    "SLUICE_SLOTS": 1,
    "SLUICE_N_THREADS": 1,
    "SLUICE_HEARTBEAT_SECONDS": 1,
    "SLUICE_OWNER_HEARTBEAT_SECONDS": 1,
    "SLUICE_OWNER_TIMEOUT_SECONDS": 4,
    "SLUICE_SHUTDOWN_GRACE_SECONDS": 2,
    "SLUICE_QUEUE_TIMEOUT_SECONDS": 2,
    "SLUICE_STALL_TIMEOUT_SECONDS": 1.5,
    "SLUICE_RESUME_GRACE_SECONDS": 2,
}
LONG = 300  # max_tokens of a `mode:long` run: 9 s of pieces, always cut short


@dataclass
class Audit:
    stack: Stack
    limited_key: str = ""
    known_id: str = ""
    received: dict[str, str] = field(default_factory=dict)  # path -> what its client got
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, error body or event): searched
    outcomes: dict[str, tuple] = field(default_factory=dict)  # path -> what it ended as
    sources: list[tuple[str, str]] = field(default_factory=list)  # (name, text): everything searched

    # --- what every request carries -------------------------------------------------------

    def headers(self, path: str, *, key: str | None = None, auth: bool = True, cookie: bool = True) -> dict:
        headers = {
            "User-Agent": CANARY(path, "user-agent"),
            "Referer": f"http://referrer.example/{CANARY(path, 'referer')}",
            "X-Canary-Note": CANARY(path, "custom-header"),
            "X-Request-ID": CANARY(path, "x-request-id"),
        }
        if cookie:  # not with a client's cookie jar, whose cookies an explicit header would replace
            headers["Cookie"] = f"tracker={CANARY(path, 'cookie')}"
        if auth:
            headers["Authorization"] = f"Bearer {key or self.stack.api_key}"
        return headers

    def query(self, path: str) -> dict:
        return {"ref": CANARY(path, "query-value"), CANARY(path, "query-name"): "1"}

    # --- HTTP ------------------------------------------------------------------------------

    def send(self, path: str, method: str, url: str, *, expect: int, client: httpx.Client | None = None,
             until=None, **options) -> tuple[httpx.Response, list[tuple[str, dict]]]:
        """One request; an SSE answer is read to its end (or until `until(events)`, then
        hung up). Keeps what the client got, and searches every error body and error event."""
        own = client is None
        client = client or httpx.Client(timeout=60)
        events: list[tuple[str, dict]] = []
        try:
            with client.stream(method, url, **options) as response:
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    response.read()
                    self._keep(path, response.text, response.status_code >= 400)
                    self.outcomes[path] = (response.status_code,)
                    assert response.status_code == expect, (path, response.status_code, response.text[:300])
                    return response, events
                text: list[str] = []
                try:
                    for message in messages(_kept(response.iter_lines(), text)):
                        if "event" not in message:
                            continue
                        events.append((message["event"], json.loads(message["data"])))
                        if message["event"] == "error":
                            self.errors.append((path, message["data"]))
                        if events[-1][0] in TERMINAL or (until and until(events)):
                            break
                except httpx.TransportError:  # cut by the network (a killed process)
                    events.append(("cut", {}))
                self._keep(path, "\n".join(text), False)
        finally:
            if own:
                client.close()
        self.outcomes[path] = (response.status_code, *[n for n, _ in events if n in TERMINAL])
        assert response.status_code == expect, (path, response.status_code)
        return response, events

    def chunks(self, path: str, url: str, body: dict, *, key: str | None = None, until=None) -> list[dict]:
        """A streamed /v1 request: its `data:` chunks, until [DONE] or `until(chunks)`."""
        got: list[dict] = []
        with httpx.Client(timeout=60) as client, client.stream(
            "POST", url, json=body, params=self.query(path), headers=self.headers(path, key=key)
        ) as response:
            assert response.status_code == 200, (path, response.status_code)
            for message in messages(response.iter_lines()):
                if "data" not in message:
                    continue
                if message["data"] == "[DONE]":
                    break
                got.append(json.loads(message["data"]))
                if "error" in got[-1]:
                    self.errors.append((path, f"data: {message['data']}"))
                if until and until(got):
                    break
            self._keep(path, json.dumps(got), False)
        self.outcomes[path] = (200, len(got))
        return got

    def _keep(self, path: str, text: str, error: bool) -> None:
        self.received[path] = self.received.get(path, "") + text
        if error:
            self.errors.append((path, text))


def native(audit: Audit, path: str, *, base: str | None = None, key: str | None = None, expect: int = 200,
           mode: str = "", until=None, **body):
    prompt = f"Shelf copy. Note {CANARY(path, 'prompt')} for {CANARY(path, 'email').lower()}@example.com {mode}"
    body = {"prompt": prompt, "stop": [CANARY(path, "stop")], "max_tokens": LONG if mode == "mode:long" else 30, **body}
    return audit.send(path, "POST", (base or audit.stack.url) + API, expect=expect, until=until, json=body,
                      params=audit.query(path), headers=audit.headers(path, key=key))


def chat_body(path: str, mode: str = "", **extra) -> dict:
    return {
        "model": "scripted",
        "messages": [
            {"role": "system", "content": f"House style {CANARY(path, 'system-message')}"},
            {"role": "user", "content": f"Copy for {CANARY(path, 'user-message')} {mode}"},
        ],
        "user": CANARY(path, "user-field"),
        "stop": [CANARY(path, "stop")],
        "metadata": {"note": CANARY(path, "metadata-value")},
        "max_tokens": LONG if mode == "mode:long" else 30,
        **extra,
    }


def completion_body(path: str, mode: str = "", **extra) -> dict:
    return {"model": "scripted", "prompt": f"Copy for {CANARY(path, 'prompt')} {mode}",
            "user": CANARY(path, "user-field"), "stop": CANARY(path, "stop"), "max_tokens": 30, **extra}


def _kept(lines, kept: list[str]):
    """`lines`, each also added to `kept` (what the client got, searched for canaries)."""
    for line in lines:
        kept.append(line)
        yield line


def first_delta(events) -> bool:
    return any(name == "delta" for name, _ in events)


def make_limited_key(stack: Stack) -> str:
    """A second API key limited to one request a minute (its CallerLimit row)."""
    prefix = secrets.token_hex(4)
    raw = f"sluice_{prefix}_{secrets.token_urlsafe(32)}"
    stack.sql(
        "INSERT INTO generation_apikey (name, prefix, key_hash, created_at, redaction_languages, phone_region) "
        "VALUES ('limited', %s, %s, now(), '', '') RETURNING id", (prefix, hash_api_key(raw)),
    )
    stack.sql(
        "INSERT INTO generation_callerlimit (api_key_id, requests_per_minute) "
        "SELECT id, 1 FROM generation_apikey WHERE prefix = %s RETURNING id", (prefix,),
    )
    return raw


def wait_finished(stack: Stack, request_id: str, timeout: float = 15.0) -> dict:
    return row(stack, request_id, timeout=timeout)


# --- the paths -----------------------------------------------------------------------------


def rate_limits(audit: Audit, connect_socket) -> None:
    """The limited key's first request passes; the next ones, one per transport, are refused
    (429), all within its minute."""
    stack = audit.stack
    native(audit, "api-limited-first", key=audit.limited_key, stream=False)
    native(audit, "api-rate-limited", key=audit.limited_key, expect=429)
    for path, url, body in (("chat-rate-limited", CHAT, chat_body("chat-rate-limited")),
                            ("completions-rate-limited", COMPLETIONS, completion_body("completions-rate-limited"))):
        audit.send(path, "POST", stack.url + url, expect=429, json=body, params=audit.query(path),
                   headers=audit.headers(path, key=audit.limited_key))
    socket = connect_socket("ws-rate-limited", audit.limited_key)
    socket.send(json.dumps({"type": "generate", "prompt": CANARY("ws-rate-limited", "prompt")}))
    message = json.loads(socket.recv())
    audit.errors.append(("ws-rate-limited", json.dumps(message)))
    assert message["data"]["status"] == 429, message
    audit.outcomes["ws-rate-limited"] = (429,)
    socket.close()


def native_api(audit: Audit) -> None:
    stack = audit.stack
    _, events = native(audit, "api-stream", temperature=0.5, seed=7)
    assert events[-1][0] == "done"
    response, _ = native(audit, "api-json", stream=False)
    audit.known_id = response.json()["id"]
    assert response.headers["X-Request-ID"] == audit.known_id and OUTPUT in audit.received["api-json"]
    for path, extra in (
        ("api-unknown-field", {CANARY("api-unknown-field", "name"): CANARY("api-unknown-field", "value")}),
        ("api-wrong-type", {"temperature": CANARY("api-wrong-type", "value")}),
        ("api-redaction-locale", {"redaction": {"languages": [CANARY("api-redaction-locale", "language")],
                                                "region": CANARY("api-redaction-locale", "region")}}),
        ("api-stop-too-long", {"stop": [CANARY("api-stop-too-long", "stop") * 4]}),
    ):
        native(audit, path, expect=400, **extra)
    broken = f'{{"prompt": "{CANARY("api-invalid-json", "prompt")}", "max_tokens": '
    audit.send("api-invalid-json", "POST", stack.url + API, expect=400, content=broken,
               headers={**audit.headers("api-invalid-json"), "Content-Type": "application/json"})
    audit.send("api-media-type", "POST", stack.url + API, expect=415, content=CANARY("api-media-type", "body"),
               headers={**audit.headers("api-media-type"), "Content-Type": "text/plain"})
    # Redaction refuses a card, a credential in a link and a secret in the prompt (422).
    user, password = CANARY("api-url-credentials", "user"), CANARY("api-url-credentials", "password")
    for path, text in (
        ("api-card", f"{CANARY('api-card', 'prompt')} pay with card {INPUT_CARD} today"),
        ("api-url-credentials", f"portal https://{user}:{password}@portal.example.com/orders"),
        ("api-secret", f"the api key is sk_live_{CANARY('api-secret', 'secret').replace('-', '')}"),
    ):
        audit.send(path, "POST", stack.url + API, expect=422, json={"prompt": text}, params=audit.query(path),
                   headers=audit.headers(path))
    # Authentication refused: a bogus key, another scheme (401).
    for path, value in (
        ("api-bogus-key", f"Bearer sluice_{secrets.token_hex(4)}_{CANARY('api-bogus-key', 'secret')}"),
        ("api-basic-auth", f"Basic {CANARY('api-basic-auth', 'credentials')}"),
    ):
        audit.send(path, "POST", stack.url + API, expect=401, json={"prompt": CANARY(path, "prompt")},
                   headers={**audit.headers(path, auth=False), "Authorization": value})
    # Ids that are canaries (404).
    for path, method, suffix in (("api-cancel-bad-id", "POST", "cancel"), ("api-events-bad-id", "GET", "events")):
        audit.send(path, method, f"{stack.url}{API}/{CANARY(path, 'id')}/{suffix}", expect=404,
                   params=audit.query(path), headers=audit.headers(path))

    # A long run holds process 0's only slot: a request there times out in the queue (504),
    # then the run is cancelled from the other process (202, through the channel layer).
    first, other = stack.processes
    holder = Holder(audit, "api-cancelled", base=first.url)
    request_id = holder.request_id()
    native(audit, "api-queue-timeout", base=first.url, expect=504, stream=False)
    audit.send("api-cancel", "POST", f"{other.url}{API}/{request_id}/cancel", expect=202,
               params=audit.query("api-cancel"), headers=audit.headers("api-cancel"))
    assert holder.events()[-1] == ("cancelled", {"reason": "client_cancel"})

    _, events = native(audit, "api-stall", mode="mode:stall")
    assert events[-1][0] == "error" and (events[-1][1]["code"], events[-1][1]["timeout_source"]) == ("timeout", "stall")
    _, events = native(audit, "api-backend-failure", mode="mode:fail")
    assert events[-1][0] == "error" and events[-1][1]["code"] == "generation_failed"
    native(audit, "api-backend-failure-json", mode="mode:fail", stream=False, expect=500)
    _, events = native(audit, "api-worker-crash", mode="mode:crash")
    assert events[-1][0] == "error" and events[-1][1]["code"] == "generation_failed"
    _, events = native(audit, "api-disconnect", mode="mode:long", until=first_delta)
    assert wait_finished(stack, events[0][1]["request_id"])["cancel_reason"] == "client_disconnect"

    # Resumable: read a few events on process 0, hang up, resume on process 1 (relayed).
    _, events = native(audit, "api-resumable", base=first.url, resumable=True, until=lambda e: len(e) >= 3)
    request_id = events[0][1]["request_id"]
    audit.send("api-resume-bad-event-id", "GET", f"{other.url}{API}/{request_id}/events", expect=400,
               params={**audit.query("api-resume-bad-event-id"),
                       "last_event_id": CANARY("api-resume-bad-event-id", "last-event-id")},
               headers=audit.headers("api-resume-bad-event-id"))
    _, rest = audit.send("api-resume", "GET", f"{other.url}{API}/{request_id}/events", expect=200,
                         params=audit.query("api-resume"), headers={**audit.headers("api-resume"), "Last-Event-ID": "3"})
    assert rest[-1][0] == "done"
    assert wait_finished(stack, request_id)["resumes"] == 1


class Holder:
    """A `mode:long` native stream read in a thread until its terminal event."""

    def __init__(self, audit: Audit, path: str, *, base: str) -> None:
        self._events: list = []
        self._started = threading.Event()
        self._error: BaseException | None = None

        def run():
            try:
                native(audit, path, base=base, mode="mode:long", until=lambda e: self._seen(e))
            except BaseException as exc:  # noqa: BLE001 - raised again by events()
                self._error = exc
            finally:
                self._started.set()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def _seen(self, events) -> bool:
        self._events = events
        if any(name == "delta" for name, _ in events):
            self._started.set()
        return False

    def request_id(self) -> str:
        assert self._started.wait(30) and self._events, f"no delta: {self._error}"
        return self._events[0][1]["request_id"]

    def events(self) -> list:
        self._thread.join(60)
        if self._error:
            raise self._error
        return [(name, data) for name, data in self._events if name in TERMINAL]


def openai_api(audit: Audit) -> None:
    stack = audit.stack
    got = audit.chunks("chat-stream", stack.url + CHAT, chat_body("chat-stream", stream=True))
    assert got[-1]["choices"][0]["finish_reason"] == "stop"
    audit.send("chat-json", "POST", stack.url + CHAT, expect=200, json=chat_body("chat-json"),
               params=audit.query("chat-json"), headers=audit.headers("chat-json"))
    audit.send("completions-json", "POST", stack.url + COMPLETIONS, expect=200,
               json=completion_body("completions-json"), params=audit.query("completions-json"),
               headers=audit.headers("completions-json"))
    audit.chunks("completions-stream", stack.url + COMPLETIONS, completion_body("completions-stream", stream=True))
    invalid = {
        "chat-unknown-field": (CHAT, chat_body("chat-unknown-field", **{
            CANARY("chat-unknown-field", "name"): CANARY("chat-unknown-field", "value")})),
        "chat-bad-role": (CHAT, {**chat_body("chat-bad-role"), "messages": [
            {"role": CANARY("chat-bad-role", "role"), "content": CANARY("chat-bad-role", "content")}]}),
        "chat-bad-content": (CHAT, {**chat_body("chat-bad-content"), "messages": [
            {"role": "user", "content": [{"type": CANARY("chat-bad-content", "part-type"),
                                          "text": CANARY("chat-bad-content", "part-text")}]}]}),
        "completions-wrong-type": (COMPLETIONS, completion_body("completions-wrong-type",
                                                                temperature=CANARY("completions-wrong-type", "value"))),
        "completions-bad-model": (COMPLETIONS, completion_body("completions-bad-model", n=2,
                                                               model=CANARY("completions-bad-model", "model"))),
    }
    for path, (url, body) in invalid.items():
        audit.send(path, "POST", stack.url + url, expect=400, json=body, params=audit.query(path),
                   headers=audit.headers(path))
    card = chat_body("chat-card")
    card["messages"][1]["content"] += f" card {INPUT_CARD}"
    audit.send("chat-card", "POST", stack.url + CHAT, expect=422, json=card, params=audit.query("chat-card"),
               headers=audit.headers("chat-card"))
    audit.send("chat-backend-failure", "POST", stack.url + CHAT, expect=500,
               json=chat_body("chat-backend-failure", mode="mode:fail"), params=audit.query("chat-backend-failure"),
               headers=audit.headers("chat-backend-failure"))
    audit.send("models-bad-id", "GET", f"{stack.url}/v1/models/{CANARY('models-bad-id', 'id')}", expect=404,
               params=audit.query("models-bad-id"), headers=audit.headers("models-bad-id"))
    # A hang-up after the first chunk, and a cancel through the native endpoint by X-Request-ID.
    audit.chunks("chat-disconnect", stack.url + CHAT, chat_body("chat-disconnect", mode="mode:long", stream=True),
                 until=lambda got: any(c["choices"][0]["delta"].get("content") for c in got))
    with httpx.Client(timeout=60) as client, client.stream(
        "POST", stack.url + CHAT, json=chat_body("chat-cancelled", mode="mode:long", stream=True),
        params=audit.query("chat-cancelled"), headers=audit.headers("chat-cancelled"),
    ) as response:
        lines = response.iter_lines()
        next(line for line in lines if line.startswith("data: "))
        request_id = response.headers["X-Request-ID"]
        audit.send("chat-cancel", "POST", f"{stack.url}{API}/{request_id}/cancel", expect=202,
                   params=audit.query("chat-cancel"), headers=audit.headers("chat-cancel"))
        audit._keep("chat-cancelled", "\n".join(lines), False)
    assert wait_finished(stack, request_id)["cancel_reason"] == "client_cancel"


def editor_pages(audit: Audit) -> httpx.Client:
    """A signed-in editor (after a failed sign-in with canaries) composing through nginx."""
    stack = audit.stack
    client = httpx.Client(base_url=stack.url, timeout=60,
                          headers=audit.headers("editor-session", auth=False, cookie=False))
    client.cookies.set("tracker", CANARY("editor-session", "cookie"))
    client.get("/login/")
    failed = client.post("/login/", data={
        "username": CANARY("editor-login", "username"), "password": CANARY("editor-login", "password"),
        "csrfmiddlewaretoken": client.cookies["csrftoken"]})
    assert failed.status_code == 200 and 'id="login-error"' in failed.text  # the form again, with its error
    signed_in = client.post("/login/", data={
        "username": stack.admin_username, "password": stack.admin_password,
        "csrfmiddlewaretoken": client.cookies["csrftoken"]})
    assert signed_in.status_code == 302
    assert client.get("/").status_code == 200
    csrf = {"X-CSRFToken": client.cookies["csrftoken"]}

    def fields(path: str, mode: str = "", **extra) -> dict:
        return {"product_name": CANARY(path, "product-name"),
                "product_details": f"Oiled oak {CANARY(path, 'product-details')} {mode}",
                "audience": CANARY(path, "audience"),
                "internal_notes": f"Ask {CANARY(path, 'email').lower()}@example.com {CANARY(path, 'internal-notes')}",
                "pricing_terms": f"Supplier {CANARY(path, 'pricing-terms')} margin 12 %",
                "tone": "friendly", "length": "short", **extra}

    def compose(path: str, body: dict, expect: int, until=None, headers=csrf):
        return audit.send(path, "POST", "/compose/generate", client=client, expect=expect, until=until,
                          json=body, params=audit.query(path),
                          headers={**audit.headers(path, auth=False, cookie=False), **headers})

    _, events = compose("editor-compose", fields("editor-compose"), 200)
    assert events[-1][0] == "done"
    compose("editor-unknown-field", fields("editor-unknown-field", **{
        CANARY("editor-unknown-field", "name"): CANARY("editor-unknown-field", "value")}), 400)
    compose("editor-bad-tone", fields("editor-bad-tone", tone=CANARY("editor-bad-tone", "tone")), 400)
    compose("editor-too-long", fields("editor-too-long", product_name=CANARY("editor-too-long", "name") * 10), 400)
    # A card in the details is refused; in the internal notes it is replaced by a placeholder.
    compose("editor-card", fields("editor-card", product_details=f"{CANARY('editor-card', 'details')} {INPUT_CARD}"),
            422)
    _, events = compose("editor-card-redacted", fields(
        "editor-card-redacted", internal_notes=f"{CANARY('editor-card-redacted', 'notes')} {INPUT_CARD}"), 200)
    assert events[-1][0] == "done"
    compose("editor-no-csrf", fields("editor-no-csrf"), 403, headers={})
    _, events = compose("editor-cancelled", fields("editor-cancelled", mode="mode:long"), 200,
                        until=first_delta)
    request_id = events[0][1]["request_id"]
    audit.send("editor-cancel", "POST", f"{API}/{request_id}/cancel", client=client, expect=202,
               params=audit.query("editor-cancel"),
               headers={**audit.headers("editor-cancel", auth=False, cookie=False), **csrf})
    assert wait_finished(stack, request_id)["cancel_reason"] == "client_cancel"
    # A hang-up: the page's runs are resumable, so it ends after the resume grace (2 s).
    _, events = compose("editor-disconnect", fields("editor-disconnect", mode="mode:long"), 200, until=first_delta)
    assert wait_finished(stack, events[0][1]["request_id"])["cancel_reason"] == "client_disconnect"
    history = client.get("/history")
    assert history.status_code == 200
    audit.sources.append(("editor /history page", history.text))
    return client


def ws_connect(audit: Audit, path: str, key: str | None = None):
    """A WebSocket through nginx with every canary header, query parameters and a Bearer key."""
    import websocket

    url = f"{audit.stack.url.replace('http://', 'ws://')}/ws/generations?{httpx.QueryParams(audit.query(path))}"
    headers = audit.headers(path, key=key)
    return websocket.create_connection(url, timeout=30, suppress_origin=True,
                                       header=[f"{name}: {value}" for name, value in headers.items()])


def websocket_paths(audit: Audit) -> None:
    import websocket

    stack = audit.stack

    def connect(path: str, key: str | None = None):
        return ws_connect(audit, path, key)

    def generate(path: str, *, mode: str = "", key: str | None = None, stop_after=None, socket=None, **extra):
        socket = socket or connect(path, key)
        socket.send(json.dumps({
            "type": "generate", "max_tokens": LONG if mode == "mode:long" else 30, "stop": [CANARY(path, "stop")],
            "prompt": f"Copy {CANARY(path, 'prompt')} for {CANARY(path, 'email').lower()}@example.com {mode}",
            **extra}))
        return socket, read(path, socket, stop_after)

    def read(path: str, socket, stop_after=None) -> list[dict]:
        got = []
        while True:
            try:
                opcode, data = socket.recv_data(control_frame=True)
            except websocket.WebSocketConnectionClosedException:
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                got.append({"event": "closed", "data": {"code": int.from_bytes(data[:2], "big")}})
                break
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            message = json.loads(data)
            got.append(message)
            if message["event"] == "error":
                audit.errors.append((path, json.dumps(message)))
            if message["event"] in TERMINAL or (stop_after and stop_after(got)):
                break
        audit._keep(path, json.dumps(got), False)
        audit.outcomes[path] = tuple(m["event"] for m in got if m["event"] in TERMINAL)
        return got

    socket, got = generate("ws-generate", resumable=False)
    assert got[-1]["event"] == "done"
    socket.close()
    for path, extra in (
        ("ws-unknown-field", {CANARY("ws-unknown-field", "name"): CANARY("ws-unknown-field", "value")}),
        ("ws-card", {"prompt": f"{CANARY('ws-card', 'prompt')} card {INPUT_CARD}"}),
    ):
        socket, got = generate(path, **extra)
        assert got[-1]["data"]["status"] in (400, 422), got[-1]
        socket.close()
    socket = connect("ws-bad-type")
    socket.send(json.dumps({"type": CANARY("ws-bad-type", "type"), "prompt": CANARY("ws-bad-type", "prompt")}))
    assert read("ws-bad-type", socket)[-1]["data"]["status"] == 400
    socket.close()
    socket = connect("ws-bad-resume")
    socket.send(json.dumps({"type": "resume", "request_id": CANARY("ws-bad-resume", "id"), "last_event_id": 1}))
    assert read("ws-bad-resume", socket)[-1]["data"]["status"] == 404
    socket.close()
    socket, got = generate("ws-bogus-key", key=f"sluice_{secrets.token_hex(4)}_{CANARY('ws-bogus-key', 'secret')}")
    assert got[-1]["data"]["status"] == 401
    socket.close()
    # Cancel in flight; hang up in flight; resume on a new socket.
    socket, got = generate("ws-cancelled", mode="mode:long", stop_after=lambda m: m[-1]["event"] == "delta")
    socket.send(json.dumps({"type": "cancel", "reason": CANARY("ws-cancelled", "cancel-field")}))
    got = read("ws-cancelled", socket)
    assert got[-1]["data"] == {"reason": "client_cancel"}, got
    socket.close()
    socket, got = generate("ws-disconnect", mode="mode:long", stop_after=lambda m: m[-1]["event"] == "delta")
    socket.close()
    assert wait_finished(stack, got[0]["data"]["request_id"])["cancel_reason"] == "client_disconnect"
    socket, got = generate("ws-resumable", resumable=True, stop_after=lambda m: len(m) >= 3)
    socket.close()
    again = connect("ws-resume")
    again.send(json.dumps({"type": "resume", "request_id": got[0]["data"]["request_id"], "last_event_id": 3}))
    assert read("ws-resume", again)[-1]["event"] == "done"
    again.close()


def crash(audit: Audit) -> None:
    """kill -9 the process serving a stream that went through nginx."""
    stack = audit.stack
    holder = Holder(audit, "kill-9", base=stack.url)
    request_id = holder.request_id()
    dead, survivor = owner_of(stack, request_id)
    dead.kill()
    assert holder.events() == [], "a killed process sends no terminal event"
    record = wait_finished(stack, request_id, timeout=20)
    assert (record["status"], record["error_code"]) == ("interrupted", "process_died")
    audit.outcomes["kill-9"] = ("interrupted",)


# --- what the stack wrote ----------------------------------------------------------------


def collect(audit: Audit, pg_log_start: int) -> None:
    """Everything the stack wrote and serves to operators, and every error the clients got."""
    stack, sources = audit.stack, audit.sources
    survivor = next(process for process in stack.processes if process.alive())
    time.sleep(1.5)  # the last log lines, a heartbeat of sealing and sweeping
    sources += what_the_stack_wrote(stack, pg_log_start=pg_log_start)
    with httpx.Client(timeout=30) as client:
        for name in ("/metrics", "/healthz", "/readyz"):
            answer = client.get(survivor.url + name)
            assert answer.status_code == 200, name
            sources.append((name, answer.text))
    with closing(admin_session(stack, survivor)) as admin:
        pages = ["/admin/", "/admin/generation/generation/", "/admin/generation/apikey/",
                 "/admin/generation/callerlimit/", "/admin/auth/user/"]
        pages += [f"/admin/generation/generation/?status__exact={status}"
                  for status in ("completed", "cancelled", "failed", "timed_out", "interrupted")]
        pages += [f"/admin/generation/generation/dashboard/?window={window}" for window in ("1h", "24h", "30d")]
        pages += [f"/admin/generation/generation/{r['id']}/change/" for r in stack.sql(
            "SELECT id FROM generation_generation")]
        for page in pages:
            answer = admin.get(page)
            assert answer.status_code == 200, page
            sources.append((f"admin {page}", answer.text))
    for index, (path, text) in enumerate(audit.errors):
        sources.append((f"error body #{index} ({path})", text))


@pytest.fixture(scope="module")
def audit():
    if not os.access(NGINX, os.X_OK):
        pytest.skip("nginx is not installed (`make test` installs it)")
    pg_log_start = postgres_log_size()
    started = time.monotonic()
    with Stack(processes=2, settings=SETTINGS) as stack:
        audit = Audit(stack, limited_key=make_limited_key(stack))
        print(f"\nleak audit: stack up in {time.monotonic() - started:.1f}s")
        rate_limits(audit, lambda path, key: ws_connect(audit, path, key))
        native_api(audit)
        openai_api(audit)
        editor = editor_pages(audit)
        websocket_paths(audit)
        crash(audit)
        print(f"leak audit: {len(audit.outcomes)} requests, {len(CANARY.made)} canaries in "
              f"{time.monotonic() - started:.1f}s")
        editor.close()
        collect(audit, pg_log_start)
        yield audit


def test_every_path_reached_its_outcome_and_the_client_got_the_output(audit):
    assert OUTPUT in audit.received["api-stream"] and OUTPUT in audit.received["editor-compose"]
    assert OUTPUT in audit.received["chat-json"] and OUTPUT in audit.received["ws-generate"]
    email = next(value for value, where in CANARY.made.items() if where == "api-stream/email").lower()
    assert f"{email}@example.com" in audit.received["api-stream"]  # restored from [EMAIL_1] for its caller
    assert OUTPUT_CARD not in "".join(audit.received.values()), "the model's card number is masked"
    statuses = {path: outcome[0] for path, outcome in audit.outcomes.items() if outcome and isinstance(outcome[0], int)}
    assert {code for code in statuses.values()} >= {200, 202, 400, 401, 403, 404, 415, 422, 429, 500, 504}


def groups(sources: list[tuple[str, str]]) -> dict[str, set[str]]:
    """Source names by kind of place, for the summary."""
    kinds = {"admin ": "admin pages", "error body": "error bodies and events", "metrics/": "metrics files",
             "django_session": "sessions (decoded)", "PostgreSQL server log": "PostgreSQL server log",
             "nginx/temp": "nginx temp files"}
    grouped: dict[str, set[str]] = {}
    for name, _ in sources:
        kind = next((label for prefix, label in kinds.items() if name.startswith(prefix)), name)
        grouped.setdefault(kind, set()).add(name)
    return grouped


def report(found: list[tuple[str, str, str]]) -> str:
    """Where each canary was found, counted by kind and place, then the first few in context."""
    summary = Counter(f"{where.split('/')[-1].split(' ')[0]} in {source}" for where, source, _ in found)
    return (f"{len(found)} canary occurrence(s) by kind and place:\n"
            + "\n".join(f"  {count} {what}" for what, count in summary.most_common())
            + "\nfirst ones:\n" + "\n".join(f"  {where} in {source}: ...{context.replace(chr(10), ' ')}..."
                                            for where, source, context in found[:20]))


def test_no_canary_from_a_body_message_output_or_header_in_anything_the_stack_wrote(audit):
    """Prompts, fields, messages, `user`, `stop`, unknown names and values, form fields,
    WebSocket messages, the model's output, a worker's exception message, Authorization,
    Cookie, X-Request-ID and a custom header: nowhere."""
    sources = dict(audit.sources)
    logs = [text for name, text in audit.sources if name.startswith("sluice-")]
    # The search reads the real record: the JSON request's id is in a Sluice log line, nginx's
    # access log and the dump; only its text is not.
    assert len(logs) == 2 and any(audit.known_id in text for text in logs)
    assert "POST /api/v1/generations" in sources["nginx/access.log"] and audit.known_id in sources["pg_dump"]
    assert "sluice_generations_total" in sources["/metrics"] and "Rate-limit refusals" in "".join(sources.values())
    found = occurrences(audit.sources, CANARY.needles(in_url=False)) + CANARY.strays(audit.sources)
    in_urls = occurrences(audit.sources, CANARY.needles(in_url=True))
    print(f"leak audit: {len(CANARY.made)} canaries; per place: sources, kB, found (body/message/"
          "output/header canaries), found (URL/User-Agent/Referer canaries)")
    for group, names in groups(audit.sources).items():
        size = sum(len(text) for name, text in audit.sources if name in names)
        print(f"  {group}: {len(names)}, {size / 1000:.0f} kB, {sum(f[1] in names for f in found)}, "
              f"{sum(f[1] in names for f in in_urls)}")
    assert not found, report(found)


def test_no_canary_from_a_url_or_client_header_in_the_logs(audit):
    """Query names and values, ids in the path, User-Agent and Referer. nginx's error log is
    left out: its format is fixed and quotes the request line and Referer of a request nginx
    failed to proxy (the kill -9 here); docs/deployment.md, Leak audit."""
    sources = [(name, text) for name, text in audit.sources if name != "nginx/error.log"]
    found = occurrences(sources, CANARY.needles(in_url=True))
    assert not found, report(found)


def test_refusals_are_counted_on_the_dashboard(audit):
    """Four 429s (native, chat, completions, WebSocket) from two processes, one figure."""
    page = next(text for name, text in audit.sources if name == "admin /admin/generation/generation/dashboard/?window=1h")
    section = page[page.index("Rate-limit refusals") :]
    section = section[: section.index("</table>")]
    assert "<tr><th>Total</th><td>4</td></tr>" in section and "<th>requests_per_minute</th><td>4</td>" in section
