"""`make stack`: start the local production stack, print where it is, run until Ctrl-C or
SIGTERM, then stop everything it started."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .stack import Stack, StackError


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.localstack", description=__doc__)
    parser.add_argument("--processes", type=int, default=2, help="Sluice processes behind nginx (default 2)")
    args = parser.parse_args()
    # SLUICE_* settings given to `make stack` reach the Sluice processes (e.g. SLUICE_SLOTS=2).
    settings = {key: value for key, value in os.environ.items() if key.startswith("SLUICE_")}
    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop_requested.set())
    stack = Stack(processes=args.processes, settings=settings)
    print(f"Starting the stack in {stack.directory} ...", flush=True)
    try:
        stack.start()
    except StackError as exc:
        print(f"The stack did not start: {exc}", file=sys.stderr)
        return 1
    ports = ", ".join(str(process.port) for process in stack.processes)
    print(
        f"\nSluice behind nginx: {stack.url}/   (admin: {stack.url}/admin/)\n"
        f"  admin user {stack.admin_username}, password {stack.admin_password}\n"
        f"  API key:   {stack.api_key}\n"
        f"  processes: 127.0.0.1:{ports} (SLUICE_N_THREADS={stack.env['SLUICE_N_THREADS']} each)\n"
        f"  database:  {stack.database_url} (dropped at exit)\n"
        f"  redis:     {stack.redis.url}\n"
        f"  logs:      {stack.directory}/\n"
        "Ctrl-C stops everything.",
        flush=True,
    )
    while not stop_requested.wait(1.0):
        for process in stack.processes:
            if not process.alive() and process.process is not None:
                print(f"Sluice process {process.index} exited ({process.process.returncode}); see {process.log_path}",
                      file=sys.stderr, flush=True)
                process.process = None
    print("Stopping ...", flush=True)
    stack.stop()
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
