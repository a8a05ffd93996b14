"""Issue 6 benchmark: the admin changelist and dashboard on a large table.

    python bench/admin_bench.py [--rows 1000000] [--repeats 5]

Seeds a fresh SQLite database (in a temporary data dir) with N Generation rows spread over
30 days by bulk insert, then times page loads in-process (Django test client, a superuser):
the unfiltered changelist, a filtered one, an exact request-id search, a late page, and the
dashboard for each window. Reports median and max ms. Writes bench/results/admin.json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def seed(db_path: Path, rows: int) -> str:
    """Bulk insert `rows` generations; returns one request id to search for."""
    rng = random.Random(7)
    now = datetime.now(timezone.utc)
    statuses = ["completed"] * 80 + ["cancelled"] * 12 + ["timed_out"] * 4 + ["failed"] * 4
    reasons = ["client_disconnect", "client_cancel", "admin_cancel"]
    version = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    probe = None
    connection = sqlite3.connect(db_path)
    connection.execute("PRAGMA journal_mode=WAL")
    columns = (
        "request_id, channel, status, cancel_reason, timeout_source, error_code, finish_reason, validation_result, "
        "redaction_counts, prompt_chars, prompt_tokens, max_tokens, output_tokens, tokens_after_cancel, model_name, "
        "model_version, owner, created_at, started_at, first_token_at, finished_at, queue_ms, ttft_ms, duration_ms, "
        "tokens_per_second"
    )
    batch = []
    for i in range(rows):
        created = now - timedelta(seconds=rng.randint(0, 30 * 86400))
        status = rng.choice(statuses)
        ttft = rng.randint(20, 600)
        duration = ttft + rng.randint(300, 15000)
        request_id = uuid.uuid4().hex
        probe = probe or request_id
        stamp = created.strftime("%Y-%m-%d %H:%M:%S.%f")
        finished = (created + timedelta(milliseconds=duration)).strftime("%Y-%m-%d %H:%M:%S.%f")
        batch.append((
            request_id, rng.choice(["api", "web", "cli"]), status,
            rng.choice(reasons) if status == "cancelled" else "",
            rng.choice(["stall", "total", "queue_wait"]) if status == "timed_out" else "",
            "backend_error" if status == "failed" else "", "length" if status == "completed" else "",
            rng.choice(["ok", "ok", "redacted"]), rng.choice(['{}', '{"EMAIL_ADDRESS": 1}', '{"SUPPLIER": 2}']),
            rng.randint(40, 4000), rng.randint(10, 900), 256, rng.randint(1, 300),
            1 if status == "cancelled" and rng.random() < 0.3 else 0,
            "gemma-3-270m-q4_k_m", version, "bench", stamp, stamp, stamp, finished,
            rng.randint(0, 200), ttft, duration, round(rng.uniform(20, 45), 2),
        ))
        if len(batch) == 50_000:
            connection.executemany(f"INSERT INTO generation_generation ({columns}) VALUES ({','.join('?' * 25)})", batch)
            batch.clear()
    if batch:
        connection.executemany(f"INSERT INTO generation_generation ({columns}) VALUES ({','.join('?' * 25)})", batch)
    connection.commit()
    connection.execute("ANALYZE")
    connection.close()
    return str(uuid.UUID(probe))


def timed(client, url: str, repeats: int) -> dict:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return {"url": url, "median_ms": round(statistics.median(samples), 1), "max_ms": round(max(samples), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="sluice-admin-bench-"))
    os.environ.update(DJANGO_SETTINGS_MODULE="project.settings", SLUICE_DATA_DIR=str(data_dir),
                      SLUICE_PRELOAD_MODEL="false")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--no-input", verbosity=0)
    started = time.perf_counter()
    probe = seed(data_dir / "sluice.sqlite3", args.rows)
    seeded_s = time.perf_counter() - started
    admin = get_user_model().objects.create_superuser("bench", password="bench-password-123")
    client = Client()
    client.force_login(admin)
    base = "/admin/generation/generation/"
    pages = [
        base,
        f"{base}?status__exact=cancelled",
        f"{base}?cancel_reason__exact=admin_cancel",
        f"{base}?q={probe}",
        f"{base}?p=100",
        *(f"{base}dashboard/?window={window}" for window in ("1h", "24h", "7d", "30d")),
    ]
    client.get(base)  # warm caches once
    results = [timed(client, url, args.repeats) for url in pages]
    report = {"rows": args.rows, "seed_seconds": round(seeded_s, 1), "database": "sqlite (WAL)", "pages": results}
    out = ROOT / "bench" / "results" / "admin.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
