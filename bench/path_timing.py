"""Where Sluice's own time goes before a request reaches a remote engine, and after it answers.

    python bench/path_timing.py [--requests 130] [--skip 30] [--first-delay-ms 0]

A real Sluice server (remote backend) in front of an engine that answers at once
(harness.InstantEngine, in this process), with bench/timing_hook loaded into the server: it
stamps entry (and exit) of the request path's steps. Requests go one at a time; for each, the
client's send, the steps' stamps, the engine's arrival and the client's first delta are put
on one clock (time.monotonic is system-wide), and the medians printed as ms after the send.
A diagnostic for issue 15's first-token overhead, not a target figure.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.harness import InstantEngine, iter_events, machine_info, start_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=130)
    parser.add_argument("--skip", type=int, default=30, help="warm-up requests left out of the medians")
    parser.add_argument("--first-delay-ms", type=float, default=0.0,
                        help="the engine's chunks this long after its headers, as a real engine's prompt time")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sluice-path-timing-"))
    log = work / "timing.log"
    log.touch()
    engine = InstantEngine(first_delay=args.first_delay_ms / 1000)
    arrivals: list[float] = []
    handler = engine.server.RequestHandlerClass
    answer = handler.do_POST

    def stamped(self) -> None:
        arrivals.append(time.monotonic())
        answer(self)

    handler.do_POST = stamped
    writes: list[float] = []
    setup = handler.setup

    def stamped_setup(self) -> None:
        setup(self)
        write = self.wfile.write

        def stamped_write(data) -> int:
            if bytes(data).startswith(b"data:"):
                writes.append(time.monotonic())
            return write(data)

        self.wfile.write = stamped_write

    handler.setup = stamped_setup
    os.environ["SLUICE_TIMING_LOG"] = str(log)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "bench" / "timing_hook"),
                                                             os.environ.get("PYTHONPATH")]))
    server = start_server(work / "server", SLUICE_BACKEND="generation.backends.remote.RemoteBackend",
                          SLUICE_UPSTREAMS=engine.url, SLUICE_UPSTREAM_SLOTS="1", SLUICE_PRELOAD_MODEL="true")
    sends, firsts = [], []
    try:
        time.sleep(1.5)  # the hook installs itself once the modules are imported
        with httpx.Client(timeout=60) as client:
            for index in range(args.requests):
                body = {"prompt": f"Catalogue item {index}. Write a tagline:", "max_tokens": 4, "temperature": 0}
                first = None
                sends.append(time.monotonic())
                with client.stream("POST", f"{server.url}/api/v1/generations", json=body,
                                   headers=server.headers()) as response:
                    for name, _ in iter_events(response):
                        if name == "delta" and first is None:
                            first = time.monotonic()
                firsts.append(first)
                time.sleep(0.02)
    finally:
        server.stop()
        engine.stop()
    stamps = [(name, float(at)) for name, at in (line.split() for line in log.read_text().splitlines())]
    if not any(name == "installed" for name, _ in stamps):
        raise SystemExit("the timing hook did not install itself in the server")
    offsets: dict[str, list[float]] = {}
    for index in range(args.skip, len(sends)):
        start, end = sends[index], sends[index + 1] if index + 1 < len(sends) else float("inf")
        row = {"engine reached": next((at for at in arrivals if start <= at < end), None), "first delta": firsts[index],
               "engine writes": next((at for at in writes if start <= at < end), None)}
        for name, at in stamps:
            if start <= at < end:
                row.setdefault(name, at)
        for name, at in row.items():
            if at is not None:
                offsets.setdefault(name, []).append((at - start) * 1000)
    machine = machine_info()
    print(f"{machine['cpu_model']}, {machine['cores_usable']} cores, load {machine['load_average'][0]}; "
          f"ms after the client's send, medians of {len(sends) - args.skip} requests")
    for name, values in sorted(offsets.items(), key=lambda item: statistics.median(item[1])):
        print(f"  {name:18s} {statistics.median(values):7.3f}")


if __name__ == "__main__":
    main()
