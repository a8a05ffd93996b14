"""What the stack tests share: request bodies, rows from the stack's database, the process
that owns a run, and an admin session on one process."""
from __future__ import annotations

import re
import time

import httpx

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
