"""`manage.py generate` with the scripted backend; one optional run against the real model."""
import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from generation.models import Generation

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "confidential merger terms for Northwind"


def generate(*args, stdout=None):
    out, err = stdout or io.StringIO(), io.StringIO()
    call_command("generate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def scheduler_and_backend():
    from generation.lifecycle.runtime import get_backend, get_scheduler

    return get_scheduler(), get_backend()


def test_streams_the_text_to_stdout_and_the_summary_to_stderr(scripted, caplog, capfd):
    out, err = generate(SECRET, "--max-tokens", "20", "--temperature", "0", "--stop", "x", "--stop", "y")
    assert out == "Hello, world.\n"
    assert "ttft " in err and "4 tokens" in err and "tokens/s" in err and "finish stop" in err
    assert "queued" not in err
    row = Generation.objects.get()
    assert (row.channel, row.status, row.finish_reason, row.output_tokens) == ("cli", "completed", "stop", 4)
    assert row.user_id is None and row.api_key_id is None and row.max_tokens == 20
    params = scripted.calls[0]["params"]
    assert (params.temperature, params.stop) == (0.0, ("x", "y"))
    process_output = capfd.readouterr()
    assert SECRET not in err + caplog.text + process_output.out + process_output.err


def test_each_delta_is_flushed_as_it_arrives(scripted):
    scripted.script = ["one", " two", " three"]
    scripted.token_delay = 0.02

    class Recorder(io.StringIO):
        def __init__(self):
            super().__init__()
            self.flushed = []

        def flush(self):
            self.flushed.append(self.getvalue())

    out = Recorder()
    generate("prompt", "--quiet", stdout=out)
    # The output guard holds the newest word until a space shows it is whole; the space goes out with it.
    assert out.flushed[:3] == ["one ", "one two ", "one two three"]
    assert out.getvalue() == "one two three\n"


def test_dash_reads_the_prompt_from_stdin(scripted, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("four words from stdin\n"))
    out, err = generate("-", "--quiet")
    assert out == "Hello, world.\n" and err == ""
    assert Generation.objects.get().prompt_chars == len("four words from stdin\n")


def test_json_prints_one_object(scripted):
    out, _ = generate("prompt", "--json", "--quiet")
    body = json.loads(out)
    assert body["status"] == "completed" and body["text"] == "Hello, world."
    assert body["usage"] == {"prompt_tokens": 1, "completion_tokens": 4} and body["finish_reason"] == "stop"
    assert set(body["timings"]) == {"queue_ms", "ttft_ms", "generation_ms", "tokens_per_second"}
    assert body["id"] == str(Generation.objects.get().request_id)


@pytest.mark.parametrize(
    "args, message",
    [
        (["   "], "'prompt' must not be empty."),
        ([SECRET, "--max-tokens", "100000"], "'max_tokens' must be at most"),
        ([SECRET, "--max-tokens", "0"], "'max_tokens' must be >= 1"),
        ([SECRET, "--temperature", "3"], "'temperature' must be <= 2"),
        ([SECRET, "--max-tokens", "510"], "exceed the model's context"),
        ([SECRET + "\udcff"], "not valid UTF-8"),
    ],
)
def test_bad_input_fails_without_echoing_the_prompt(scripted, args, message):
    with pytest.raises(CommandError, match=message) as caught:
        generate(*args)
    assert SECRET not in str(caught.value)
    assert not Generation.objects.exists()


def test_ctrl_c_cancels_the_run_and_exits_130(scripted):
    scripted.script = ["word "] * 200
    scripted.token_delay = 0.01

    class InterruptAfterThreeDeltas(io.StringIO):
        deltas = 0

        def write(self, text):
            self.deltas += 1
            if self.deltas == 3:
                os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends; the loop's handler takes it
            return super().write(text)

    out = InterruptAfterThreeDeltas()
    err = io.StringIO()
    with pytest.raises(SystemExit) as caught:
        call_command("generate", "a long one", "--max-tokens", "500", stdout=out, stderr=err)
    assert caught.value.code == 130
    assert err.getvalue().strip() == "Cancelled."
    text = out.getvalue()
    assert text.endswith("\n") and text.startswith("word word word") and len(text) < 20 * 5
    row = Generation.objects.get()
    assert (row.status, row.cancel_reason, row.channel) == ("cancelled", "client_cancel", "cli")
    assert row.finished_at is not None and row.tokens_after_cancel <= 1
    scheduler, backend = scheduler_and_backend()
    assert scheduler.snapshot()["slots_busy"] == 0 and backend.busy_slots() == set()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_model_failure_keeps_the_text_so_far_and_fails(scripted):
    scripted.fail_after = 2
    out = io.StringIO()
    with pytest.raises(CommandError, match="The model failed"):
        generate("prompt", stdout=out)
    assert out.getvalue() == "Hello,\n"
    assert Generation.objects.get().status == "failed"


def test_stall_timeout_fails_with_the_timeout_message(scripted, settings):
    settings.SLUICE_STALL_TIMEOUT_SECONDS = 0.2
    scripted.stall_after = 1
    with pytest.raises(CommandError, match="stopped producing tokens"):
        generate("prompt")
    row = Generation.objects.get()
    assert (row.status, row.timeout_source) == ("timed_out", "stall")


def test_full_queue_says_server_busy(scripted, settings):
    settings.SLUICE_MAX_QUEUE = 0
    scheduler, _ = scheduler_and_backend()
    loop = asyncio.new_event_loop()
    try:
        held = scheduler.enqueue(loop)
        with pytest.raises(CommandError, match="server busy"):
            generate("prompt")
        scheduler.release(held.slot)
    finally:
        loop.close()
    assert not Generation.objects.exists()


def test_a_queued_run_waits_for_the_slot_and_reports_the_wait(scripted):
    scheduler, _ = scheduler_and_backend()
    loop = asyncio.new_event_loop()
    try:
        held = scheduler.enqueue(loop)
        threading.Timer(0.2, scheduler.release, [held.slot]).start()
        out, err = generate("prompt")
    finally:
        loop.close()
    assert out == "Hello, world.\n"
    assert "Waiting for a model slot (position 1)" in err
    queue_ms = int(err.split("queued ")[1].split(" ms")[0])
    assert queue_ms >= 150 and Generation.objects.get().queue_ms == queue_ms


@pytest.mark.integration
def test_real_model_via_manage_py(tmp_path):
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SLUICE_BACKEND": "generation.backends.llamacpp.LlamaCppBackend",
        "SLUICE_DATA_DIR": str(tmp_path),
        "SLUICE_MODEL_CACHE_DIR": str(root / "var" / "models"),
    }
    manage = [sys.executable, str(root / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, cwd=root, check=True, timeout=120)
    prompt = "The capital of France is"
    done = subprocess.run(
        [*manage, "generate", prompt, "--max-tokens", "8", "--temperature", "0"],
        env=env, cwd=root, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() and done.stdout.endswith("\n")
    assert "tokens/s" in done.stderr and prompt not in done.stderr
