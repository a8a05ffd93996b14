"""A burst of requests on a small PostgreSQL pool: each request holds a pooled connection
only for its queries, so the burst queues for the model, never for the database. (Before,
a request kept the connection of its API key lookup while its admission asked the pool for
another: with a key the process had not cached yet, a burst took every connection and each
request waited out the pool's timeout, answered 503 database_unavailable.)"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from tests.support.live import manage, server_env, start_server
from tests.support.sse import iter_events

pytestmark = [pytest.mark.integration, pytest.mark.services]
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
CLIENTS = 60


@pytest.fixture
def pool_db():
    name = f"sluice_pool_{os.getpid()}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    yield f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_burst_with_a_key_not_yet_cached_waits_for_the_model_not_the_database(tmp_path, pool_db):
    settings = {"DATABASE_URL": pool_db, "SLUICE_SLOTS": 2, "SLUICE_MAX_QUEUE": 100, "SLUICE_DB_POOL_MAX": 2,
                "SLUICE_DB_POOL_TIMEOUT_SECONDS": 1, "SLUICE_LIMIT_CONCURRENT_STREAMS": 1000}
    server = start_server(tmp_path, **settings)
    fresh_key = manage(server_env(tmp_path, **settings), "create_api_key", "--name", "burst").strip()

    def one(index: int) -> tuple[int, str]:
        body = {"prompt": f"Name a colour for a cedar board, variant {index}:", "max_tokens": 2}
        with httpx.Client(timeout=120) as client, client.stream(
            "POST", f"{server.url}/api/v1/generations", json=body, headers={"Authorization": f"Bearer {fresh_key}"}
        ) as response:
            if response.status_code != 200:
                response.read()
                return response.status_code, response.json()["error"]["code"]
            return 200, [name for name, _ in iter_events(response)][-1]

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            outcomes = list(pool.map(one, range(CLIENTS)))
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    assert outcomes == [(200, "done")] * CLIENTS
    assert "request refused" not in server.log_path.read_text()
