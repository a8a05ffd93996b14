"""What the stack tests share: request bodies, rows from the stack's database, the process
that owns a run, an admin session on one process, a scripted backend for a stack's
processes, and what a stack wrote (for the leak audit)."""
from __future__ import annotations

import base64
import glob
import json
import os
import re
import subprocess
import time
import zlib
from pathlib import Path

import httpx

from generation.backends.base import BackendError
from tests.support.scripted import ScriptedBackend

# Completion-style prompts for the embedded base model; only shapes are asserted, never text.
PROMPT = "Write a long catalogue introduction for garden furniture:"
SHORT = {"prompt": "Product name for a cedar cutting board:", "max_tokens": 4, "temperature": 0}


def body(max_tokens: int, **extra) -> dict:
    return {"prompt": PROMPT, "max_tokens": max_tokens, **extra}


def row(stack, request_id: str, *, finished: bool = True, timeout: float = 15.0) -> dict:
    """The Generation row, waiting until it is finished when asked."""
    deadline = time.monotonic() + timeout
    while True:
        rows = stack.sql("SELECT * FROM generation_generation WHERE request_id = %s::uuid", (request_id,))
        if rows and (not finished or rows[0]["finished_at"]):
            return rows[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"row {request_id} not {'finished' if finished else 'written'} in {timeout}s: {rows}")
        time.sleep(0.05)


def owner_of(stack, request_id: str):
    """(the process serving the run, the other one)."""
    owner = row(stack, request_id, finished=False)["owner"]
    serving = next(process for process in stack.processes if process.owns(owner))
    return serving, next(process for process in stack.processes if process is not serving)


def admin_session(stack, process) -> httpx.Client:
    """An httpx client signed in to the admin of one process (directly, not through nginx)."""
    client = httpx.Client(base_url=process.url, timeout=30, follow_redirects=False)
    client.get("/admin/login/")
    response = client.post(
        "/admin/login/",
        data={"username": stack.admin_username, "password": stack.admin_password,
              "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        headers={"Referer": f"{process.url}/admin/login/"},
    )
    assert response.status_code == 302, response.status_code
    return client


def admin_action(client: httpx.Client, changelist: str, action: str, pk: int) -> None:
    """Run an admin changelist action on one object."""
    page = client.get(changelist)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    done = client.post(
        changelist,
        data={"action": action, "_selected_action": [pk], "csrfmiddlewaretoken": token},
        headers={"Referer": f"{client.base_url}{changelist}"},
    )
    assert done.status_code == 302, done.status_code


def log_text(process) -> str:
    return process.log_path.read_text(errors="replace")


class Background:
    """A stream read in a thread; wait_delta() returns its request id once text flows."""

    def __init__(self, url: str, body: dict, headers: dict) -> None:
        import threading

        from tests.support.timed_stream import read_stream

        self._delta = threading.Event()
        self._result = None
        self._error = None
        self.request_id = ""

        def on_event(stream):
            if stream.events[-1][1] == "accepted":
                self.request_id = stream.request_id
            if stream.events[-1][1] == "delta":
                self._delta.set()

        def run():
            try:
                with httpx.Client(timeout=120) as client:
                    self._result = read_stream(client, url, body, headers, on_event=on_event)
            except Exception as exc:  # noqa: BLE001 - re-raised by result()
                self._error = exc
            finally:
                self._delta.set()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def wait_delta(self, timeout: float = 60.0) -> str:
        assert self._delta.wait(timeout), "no delta in time"
        assert self.request_id, f"stream ended before its first delta: {self._error or self._result}"
        return self.request_id

    def result(self, timeout: float = 120.0):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "stream still open"
        if self._error:
            raise self._error
        return self._result



class StackScriptedBackend(ScriptedBackend):
    """The scripted backend for a stack's `manage.py serve` processes (SLUICE_BACKEND=
    tests.stack.helpers.StackScriptedBackend), configured from their environment: the pieces
    to write (JSON list in SLUICE_TEST_SCRIPT) and the seconds per piece
    (SLUICE_TEST_TOKEN_DELAY). A word in the prompt picks what a run does: `mode:long` writes
    400 more pieces after the script, `mode:stall` stops writing after two pieces until
    cancelled, `mode:fail` raises BackendError after two, `mode:crash` raises RuntimeError
    with SLUICE_TEST_CRASH_MESSAGE as its message (what a worker must never log)."""

    MODES = {"mode:long": -1, "mode:stall": -2, "mode:fail": -3, "mode:crash": -4}

    def tokenize(self, text: str) -> list[int]:
        return [self.MODES.get(word, len(word)) for word in text.split()] or [0]

    def generate(self, *, slot, prompt_tokens, params, cancel, cache_owner=None):
        script = json.loads(os.environ.get("SLUICE_TEST_SCRIPT", "[]"))
        delay = float(os.environ.get("SLUICE_TEST_TOKEN_DELAY", "0.02"))
        mode = next((name for name, mark in self.MODES.items() if mark in prompt_tokens), "")
        pieces = script + [" more"] * 400 if mode == "mode:long" else script
        for index, piece in enumerate(pieces):
            if cancel.is_set():
                return
            if index == 2 and mode == "mode:stall":
                while not cancel.wait(0.01):
                    pass
                return
            if index == 2 and mode == "mode:fail":
                raise BackendError("scripted backend failure")
            if index == 2 and mode == "mode:crash":
                raise RuntimeError(os.environ.get("SLUICE_TEST_CRASH_MESSAGE", "crash"))
            time.sleep(delay)
            yield piece


# --- what a stack wrote (tests/stack/test_leaks.py) ---------------------------------------

POSTGRES_LOGS = "/var/log/postgresql/postgresql-*-main.log"  # Debian's cluster on 127.0.0.1:5432


def postgres_log_size() -> dict[str, int]:
    """Where the machine's PostgreSQL server logs end now (readable ones only)."""
    return {path: os.path.getsize(path) for path in glob.glob(POSTGRES_LOGS) if os.access(path, os.R_OK)}


def what_the_stack_wrote(stack, *, pg_log_start: dict[str, int]) -> list[tuple[str, str]]:
    """(name, text) of every file in the stack's directory but its static files (nginx's and
    Sluice's logs, nginx's temp files, the metrics files), a pg_dump of its database, its
    sessions decoded, every key and value in its Redis, and what the PostgreSQL server logged
    since `pg_log_start` (postgres_log_size())."""
    sources = []
    for path in sorted(stack.directory.rglob("*")):
        if path.is_file() and "staticfiles" not in path.parts:
            sources.append((str(path.relative_to(stack.directory)), path.read_bytes().decode("utf-8", "replace")))
    dump = subprocess.run(["pg_dump", "--no-owner", stack.database_url], capture_output=True, text=True, timeout=120)
    assert dump.returncode == 0, dump.stderr[-500:]
    sources.append(("pg_dump", dump.stdout))
    for index, session in enumerate(stack.sql("SELECT session_data FROM django_session")):
        sources.append((f"django_session {index} (decoded)", decode_session(session["session_data"])))
    sources.append(("redis", redis_dump(stack.redis.port)))
    for path, start in pg_log_start.items():
        with open(path, "rb") as log:
            log.seek(start)
            sources.append((f"PostgreSQL server log {path}", log.read().decode("utf-8", "replace")))
    return sources


def decode_session(data: str) -> str:
    """A database session's payload (signed, base64, maybe zlib), without checking the signature."""
    payload = data.split(":", 1)[0]
    compressed = payload.startswith(".")
    payload = payload.lstrip(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return (zlib.decompress(raw) if compressed else raw).decode("utf-8", "replace")


def redis_dump(port: int) -> str:
    """Every key and value in every database of a Redis, as text."""
    import redis

    lines = []
    for db in redis.Redis(port=port).info("keyspace"):
        database = redis.Redis(port=port, db=int(db[2:]))
        for key in database.scan_iter(count=1000):
            kind = database.type(key).decode()
            read = {
                "string": database.get, "list": lambda k: database.lrange(k, 0, -1), "hash": database.hgetall,
                "set": database.smembers, "zset": lambda k: database.zrange(k, 0, -1, withscores=True),
                "stream": database.xrange,
            }.get(kind, lambda k: b"")
            lines.append(f"{db} {kind} {key!r} {read(key)!r}")
    return "\n".join(lines)


def occurrences(sources: list[tuple[str, str]], needles) -> list[tuple[str, str, str]]:
    """(what, source name, 60 characters either side) for each (what, needle, case-sensitive)
    in each source: never a whole source."""
    found = []
    lowered = [(name, text, text.lower()) for name, text in sources]
    for what, needle, case_sensitive in needles:
        for name, text, low in lowered:
            at = (text if case_sensitive else low).find(needle if case_sensitive else needle.lower())
            if at >= 0:
                found.append((what, name, text[max(0, at - 60) : at + len(needle) + 60]))
    return found
