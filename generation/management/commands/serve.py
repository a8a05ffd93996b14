"""`manage.py serve`: daphne with Sluice's own SIGTERM/SIGINT handling (graceful drain);
`--workers N` runs N such processes on one port (generation.ops.workers)."""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from generation.ops.ownership import process_unregister
from generation.ops.shutdown import drain
from generation.ops.startup import start_listeners, start_process
from generation.ops.workers import (
    Supervisor,
    default_threads,
    open_files_warning,
    oversubscription_warning,
    raise_open_files_limit,
)


def configuration_in_effect() -> str:
    """The tuned llama.cpp values and where each came from: environment, tuning file or default."""
    parts = []
    for name, source in settings.SLUICE_CONFIG_SOURCES.items():
        value = getattr(settings, name)
        if name == "SLUICE_N_THREADS" and not value:
            value, source = default_threads(), f"{source}: cores / SLUICE_PROCESSES"
        parts.append(f"{name}={value} ({source})")
    return "configuration: " + ", ".join(parts)


class Command(BaseCommand):
    help = (
        "Serve Sluice with daphne. SIGTERM or Ctrl-C: stop accepting (503), give in-flight "
        "streams SLUICE_SHUTDOWN_GRACE_SECONDS, cancel the rest with reason 'shutdown', exit. "
        "A second signal stops at once. --workers N: N processes on one port, threads sized to fit the cores."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-access-log", action="store_true")
        parser.add_argument("--workers", type=int, default=1, help="serving processes on this port (default 1)")
        parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)  # a worker's inherited listening socket

    def handle(self, *args, host, port, no_access_log=False, workers=1, fd=None, **options):
        from django.contrib.staticfiles.storage import staticfiles_storage

        if workers < 1:
            raise CommandError("--workers must be at least 1.")
        if workers > 1:
            if ":" in host:
                raise CommandError("--workers listens on an IPv4 address; put IPv6 on the proxy in front.")
            extra = ["--no-access-log"] if no_access_log else []
            grace = settings.SLUICE_SHUTDOWN_GRACE_SECONDS
            self.stdout.write(f"Sluice on http://{host}:{port}/ with {workers} workers")
            sys.exit(Supervisor(workers=workers, host=host, port=port, extra_args=extra, grace=grace).run())

        if getattr(staticfiles_storage, "manifest_strict", False) and not staticfiles_storage.hashed_files:
            raise CommandError("Static files are not collected: run `manage.py collectstatic` first (`make run` does).")
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server as _  # noqa: F401 - before the reactor: installs Twisted's asyncio one
        from twisted.internet import reactor

        from project.asgi import application
        from project.http_server import RouteAccessLog, Server

        settings.SLUICE_BIND_HOST = host  # /metrics requires its token on a non-loopback bind
        if not settings.SLUICE_UPSTREAMS:  # the model runs in this process
            threads = default_threads()
            warning = oversubscription_warning(processes=settings.SLUICE_PROCESSES, threads=threads)
            if warning:
                self.stderr.write(f"WARNING: {warning}")
            self.stdout.write(f"llama.cpp threads: {threads} ({settings.SLUICE_PROCESSES} process(es) share the cores)")
            self.stdout.write(configuration_in_effect())
            if settings.SLUICE_TUNING_STATUS.startswith("ignored"):
                self.stderr.write(f"WARNING: tuning file {settings.SLUICE_TUNING_STATUS}")
            else:
                self.stdout.write(f"tuning: {settings.SLUICE_TUNING_STATUS}")
        else:
            self.stdout.write(f"remote engines (SLUICE_UPSTREAMS): {settings.SLUICE_SLOTS} slots; "
                              f"the tuning file does not apply")
        open_files = raise_open_files_limit()
        admitted = settings.SLUICE_SLOTS + settings.SLUICE_MAX_QUEUE
        self.stdout.write(f"open streams: up to {admitted} admitted (slots + queue); open-files limit {open_files}")
        if warning := open_files_warning(open_files, streams=admitted):
            self.stderr.write(f"WARNING: {warning}")
        start_process()
        reactor.callWhenRunning(start_listeners)  # on the loop that will serve requests

        server = Server(
            application=application,
            endpoints=[f"fd:fileno={fd}"] if fd is not None else build_endpoint_description_strings(host, port),
            signal_handlers=False,  # ours below: Twisted's would kill streams without a terminal event
            action_logger=None if no_access_log else RouteAccessLog(sys.stdout),  # routes, never URLs
            application_close_timeout=settings.SLUICE_SHUTDOWN_GRACE_SECONDS + 15,
        )
        stopping = False

        async def shut_down():
            try:
                cancelled = await drain(grace=settings.SLUICE_SHUTDOWN_GRACE_SECONDS)
                await asyncio.to_thread(process_unregister)
                self.stderr.write(f"Stopped ({cancelled} generation(s) cancelled at shutdown).")
            except Exception as exc:  # noqa: BLE001 - the process must stop all the same
                self.stderr.write(f"Stopped; the shutdown failed part-way ({type(exc).__name__}).")
            finally:
                reactor.stop()

        def on_signal(signum, frame):
            nonlocal stopping
            if stopping:  # second signal: stop now
                reactor.callFromThread(reactor.stop)
                return
            stopping = True
            reactor.callFromThread(lambda: asyncio.ensure_future(shut_down()))

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.stdout.write(f"Sluice on http://{host}:{port}/  (admin: /admin/)")
        server.run()
