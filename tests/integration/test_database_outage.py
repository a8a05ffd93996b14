"""A database that goes away (on PostgreSQL): requests fail fast with a JSON 503 and
Retry-After, never a 500; a run in flight still gets its row finished once the database is
back; and everything recovers without a restart."""
from __future__ import annotations

import os
import threading
import time

import httpx
import psycopg
import pytest

from tests.support.live import start_server
from tests.support.sse import iter_events

pytestmark = [pytest.mark.integration, pytest.mark.services]
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_sql(sql: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as connection:
        connection.execute(sql)


@pytest.fixture
def outage_db():
    name = f"sluice_outage_{os.getpid()}"
    admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin_sql(f"CREATE DATABASE {name}")
    yield name
    admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def take_down(name: str) -> None:
    admin_sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    admin_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")


def bring_back(name: str) -> None:
    admin_sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")


def test_requests_get_a_json_503_while_the_database_is_down_and_recover(tmp_path, outage_db):
    url = f"postgres://postgres@127.0.0.1:5432/{outage_db}"
    server = start_server(tmp_path, DATABASE_URL=url, SLUICE_SLOTS=2, SLUICE_DB_POOL_MAX=3)
    body = {"prompt": "Write a long catalogue introduction for garden furniture:", "max_tokens": 120}
    events, reader = [], None
    try:
        with httpx.Client(timeout=60) as client:
            generations = f"{server.url}/api/v1/generations"
            with client.stream("POST", generations, json=body, headers=server.headers()) as response:
                stream = iter_events(response)
                events.append(next(stream))  # accepted: the row exists, the model is running
                reader = threading.Thread(target=lambda: events.extend(stream))
                reader.start()
                take_down(outage_db)
                try:
                    started = time.monotonic()
                    refused = client.post(
                        f"{server.url}/api/v1/generations", json={**body, "stream": False}, headers=server.headers()
                    )
                    assert time.monotonic() - started < 15
                    assert refused.status_code == 503 and refused.headers["retry-after"]
                    assert refused.json()["error"]["code"] == "database_unavailable"
                    refused = client.post(
                        f"{server.url}/v1/completions", headers=server.headers(),
                        json={"model": "gemma-3-270m-q4_k_m", "prompt": "Hi"},
                    )
                    assert refused.status_code == 503 and set(refused.json()["error"]) >= {"message", "type", "code"}
                finally:
                    bring_back(outage_db)
                reader.join(timeout=120)
        assert events[-1][0] == "done"  # the stream never depended on the database
        request_id = events[0][1]["request_id"]
        deadline = time.monotonic() + 30
        while True:  # its row is finished once the database is back (the finish write retries)
            with psycopg.connect(url.replace("postgres://", "postgresql://")) as connection:
                status = connection.execute(
                    "SELECT status FROM generation_generation WHERE request_id = %s", (request_id,)
                ).fetchone()[0]
            if status == "completed" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status == "completed"
        deadline = time.monotonic() + 20
        while True:  # as a client honouring Retry-After: the process finds the database back within moments
            again = httpx.post(
                f"{server.url}/api/v1/generations", json={"prompt": "Hi", "max_tokens": 2, "stream": False},
                headers=server.headers(), timeout=60,
            )
            if again.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert again.status_code == 200
        assert '" 500 ' not in server.log_path.read_text()  # refusals, never server errors
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
