"""`manage.py generate`: one generation from the terminal, through the same lifecycle as the API."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from contextlib import aclosing

from django.core.management.base import BaseCommand, CommandError

from generation.api.validation import validate_generation
from generation.backends.base import BackendError
from generation.lifecycle.events import Accepted, Cancelled, Delta, Done, Error, Queued, completion_body
from generation.lifecycle.intake import open_run
from generation.lifecycle.refusals import RequestInvalid
from generation.lifecycle.scheduler import QueueFull
from generation.models import Generation
from generation.ops.ownership import process_heartbeat_start, process_unregister
from generation.records.generations import Caller

EXIT_CANCELLED = 130  # 128 + SIGINT, what shells expect after Ctrl-C
OPTIONAL_FIELDS = ("max_tokens", "temperature", "top_p", "seed", "stop")


class Command(BaseCommand):
    help = "Generate text for a prompt and stream it to stdout; a summary goes to stderr. Ctrl-C cancels."

    def add_arguments(self, parser):
        parser.add_argument("prompt", help="The prompt, or '-' to read it from stdin.")
        parser.add_argument("--max-tokens", type=int, help="Most tokens to generate.")
        parser.add_argument("--temperature", type=float, help="0 is greedy (deterministic); default 0.8.")
        parser.add_argument("--top-p", type=float, help="Nucleus sampling; default 0.95.")
        parser.add_argument("--seed", type=int, help="Seed for repeatable sampling.")
        parser.add_argument("--stop", action="append", help="Stop before this text (repeatable).")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print one JSON object at the end.")
        parser.add_argument("--quiet", action="store_true", help="No progress or summary on stderr.")

    def handle(self, *args, prompt, as_json=False, quiet=False, **options):
        payload = {"prompt": read_prompt(prompt)}
        payload.update({name: options[name] for name in OPTIONAL_FIELDS if options.get(name) is not None})
        try:
            generation_input = validate_generation(payload)
        except RequestInvalid as exc:
            raise CommandError(exc.message) from None
        self.as_json, self.quiet = as_json, quiet
        self.cancel_requested = False
        process_heartbeat_start()  # this process owns its run: reconciliation elsewhere must leave it alone
        try:
            run, terminal, text = asyncio.run(self.stream(generation_input))
        except BrokenPipeError:  # the reader left (`| head`); the row already says client_disconnect
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            raise SystemExit(1) from None
        finally:
            process_unregister()
        if isinstance(terminal, Done):
            if as_json:
                body = completion_body(request_id=run.request_id, model=run.backend.info.name, done=terminal, text=text)
                self.stdout.write(json.dumps(body))
            if not quiet:
                self.stderr.write(summary(terminal, queued=self.queued))
        elif isinstance(terminal, Cancelled) and self.cancel_requested:
            self.stderr.write("Cancelled.")
            raise SystemExit(EXIT_CANCELLED)
        elif isinstance(terminal, Cancelled):
            raise CommandError(f"The generation was cancelled ({terminal.reason}).")
        else:
            raise CommandError(terminal.message if isinstance(terminal, Error) else "The generation did not finish.")

    async def stream(self, generation_input):
        """Open the run and consume its events; SIGINT asks it to stop, and we still read to its end."""
        loop = asyncio.get_running_loop()
        run = None
        self.queued = False

        def on_sigint():
            self.cancel_requested = True
            if run is not None:
                run.request_cancel(Generation.CancelReason.CLIENT_CANCEL)

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            try:
                run = await open_run(
                    caller=Caller(), channel=Generation.Channel.CLI,
                    fields={"prompt": generation_input.prompt}, params=generation_input.params,
                )
            except RequestInvalid as exc:  # e.g. prompt plus max_tokens exceed the context
                raise CommandError(exc.message) from None
            except QueueFull:
                raise CommandError("server busy: all model slots are taken and the queue is full.") from None
            except (BackendError, FileNotFoundError) as exc:
                raise CommandError(f"The model is not available: {exc}") from None
            if self.cancel_requested:  # Ctrl-C while the model loaded: cancel now, so the row says so
                run.request_cancel(Generation.CancelReason.CLIENT_CANCEL)
            parts, terminal = [], None
            async with aclosing(run.events()) as events:
                async for event in events:
                    if isinstance(event, Delta):
                        parts.append(event.text)
                        if not self.as_json:
                            self.stdout.write(event.text, ending="")
                            self.stdout.flush()
                    elif isinstance(event, (Accepted, Queued)):
                        self.note_queue(event)
                    elif event.terminal:
                        terminal = event
            if parts and not self.as_json:
                self.stdout.write("")  # end the streamed text with a newline
            return run, terminal, "".join(parts)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    def note_queue(self, event):
        position = event.queue_position if isinstance(event, Accepted) else event.position
        if position > 0:
            self.queued = True
            if not self.quiet:
                self.stderr.write(f"Waiting for a model slot (position {position})...")


def read_prompt(argument: str) -> str:
    """The prompt argument, or stdin read verbatim for '-'; it must be valid UTF-8."""
    try:
        if argument != "-":
            argument.encode("utf-8")  # argv bytes that are not UTF-8 arrive as lone surrogates
            return argument
        stream = getattr(sys.stdin, "buffer", sys.stdin)
        raw = stream.read()
        return raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeError:
        raise CommandError("The prompt is not valid UTF-8.") from None


def summary(done: Done, *, queued: bool) -> str:
    timings = done.timings
    ttft, rate = timings.get("ttft_ms"), timings.get("tokens_per_second")
    parts = [
        f"ttft {ttft} ms" if ttft is not None else "ttft -",
        f"{done.usage['completion_tokens']} tokens",
        f"{rate:.1f} tokens/s" if rate else "- tokens/s",
    ]
    if queued:
        parts.append(f"queued {timings.get('queue_ms') or 0} ms")
    parts.append(f"finish {done.finish_reason}")
    return ", ".join(parts)
