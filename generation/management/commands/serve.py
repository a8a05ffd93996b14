"""`manage.py serve`: daphne with Sluice's own SIGTERM/SIGINT handling (graceful drain)."""
from __future__ import annotations

import asyncio
import signal
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from generation.ops.ownership import process_unregister
from generation.ops.shutdown import drain
from generation.ops.startup import start_listeners, start_process


class Command(BaseCommand):
    help = (
        "Serve Sluice with daphne. SIGTERM or Ctrl-C: stop accepting (503), give in-flight "
        "streams SLUICE_SHUTDOWN_GRACE_SECONDS, cancel the rest with reason 'shutdown', exit. "
        "A second signal stops at once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-access-log", action="store_true")

    def handle(self, *args, host, port, no_access_log=False, **options):
        from django.contrib.staticfiles.storage import staticfiles_storage

        if getattr(staticfiles_storage, "manifest_strict", False) and not staticfiles_storage.hashed_files:
            raise CommandError("Static files are not collected: run `manage.py collectstatic` first (`make run` does).")
        from daphne.access import AccessLogGenerator
        from daphne.endpoints import build_endpoint_description_strings
        from twisted.internet import reactor

        from project.asgi import application
        from project.http_server import Server  # first: daphne.server installs Twisted's asyncio reactor

        settings.SLUICE_BIND_HOST = host  # /metrics requires its token on a non-loopback bind
        start_process()
        reactor.callWhenRunning(start_listeners)  # on the loop that will serve requests

        server = Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=False,  # ours below: Twisted's would kill streams without a terminal event
            action_logger=None if no_access_log else AccessLogGenerator(sys.stdout),
            application_close_timeout=settings.SLUICE_SHUTDOWN_GRACE_SECONDS + 15,
        )
        stopping = False

        async def shut_down():
            cancelled = await drain(grace=settings.SLUICE_SHUTDOWN_GRACE_SECONDS)
            await asyncio.to_thread(process_unregister)
            self.stderr.write(f"Stopped ({cancelled} generation(s) cancelled at shutdown).")
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
