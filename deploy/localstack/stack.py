"""The whole stack, started and stopped in order: PostgreSQL database and Redis, then the
Sluice processes (migrated, model loaded), then nginx in front of them. Stopping undoes
exactly that: the Sluice processes drain (SIGTERM), nginx and Redis stop, the database is
dropped, the directory is removed."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .children import StackError, env_without, stop
from .nginx import Nginx
from .services import Postgres, PrivatePostgres, Redis
from .sluice import ROOT, SluiceProcess

__all__ = ["Stack", "StackError"]
# Set by the stack for its processes; never inherited from whoever starts it.
OWNED_PREFIXES = ("SLUICE_", "DJANGO_", "DATABASE_URL", "CHANNEL_LAYER_URL", "PROMETHEUS_MULTIPROC_DIR")


class Stack:
    """`processes` Sluice processes behind nginx on loopback. `settings` are extra environment
    variables for the Sluice processes (e.g. SLUICE_SLOTS); `fronts` extra nginx listeners
    (name -> server-block body, see nginx.front_bare). Use as a context manager, or call
    start() and stop(). `private_postgres`: a cluster of the stack's own instead of a database
    on the machine's server (for a test that restarts PostgreSQL)."""

    def __init__(self, *, processes: int = 2, settings: dict | None = None, fronts: dict[str, str] | None = None,
                 worker_connections: int = 4096, private_postgres: bool = False) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="sluice-stack-"))
        self.directory.chmod(0o755)  # nginx's workers (www-data) read the static files in here
        self.postgres = PrivatePostgres(self.directory / "postgres") if private_postgres else Postgres()
        self.redis = Redis(self.directory / "redis")
        self.env = self._sluice_env(processes, settings or {})
        self.processes = [SluiceProcess(index, self.directory, self.env) for index in range(processes)]
        self.nginx = Nginx(self.directory / "nginx", upstream_ports=[p.port for p in self.processes],
                           static_root=self.directory / "data" / "staticfiles", fronts=fronts,
                           worker_connections=worker_connections)
        (self.directory / "nginx").mkdir()
        self.env["DJANGO_CSRF_TRUSTED_ORIGINS"] = f"{self.url},http://localhost:{self.nginx.port}"
        self.api_key = self.admin_username = self.admin_password = ""

    @property
    def url(self) -> str:
        return self.nginx.url

    @property
    def database_url(self) -> str:
        return self.postgres.url

    def headers(self, **extra) -> dict:
        return {"Authorization": f"Bearer {self.api_key}", **extra}

    def _sluice_env(self, processes: int, settings: dict) -> dict:
        threads = max(1, (os.cpu_count() or 1) // processes)
        env = env_without(OWNED_PREFIXES)
        env.update({
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": self.postgres.url,
            "CHANNEL_LAYER_URL": self.redis.url,
            "PROMETHEUS_MULTIPROC_DIR": str(self.directory / "metrics"),
            "SLUICE_DATA_DIR": str(self.directory / "data"),
            "SLUICE_MODEL_CACHE_DIR": os.environ.get("SLUICE_MODEL_CACHE_DIR", str(ROOT / "var" / "models")),
            "SLUICE_N_THREADS": str(threads),
            "PYTHONUNBUFFERED": "1",
        })
        env.update({key: str(value) for key, value in settings.items()})
        return env

    def start(self) -> "Stack":
        try:
            (self.directory / "metrics").mkdir()
            self.postgres.start()
            self.redis.start()
            self._prepare()
            for process in self.processes:
                process.start()
            self.nginx.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare(self) -> None:
        done = subprocess.run([sys.executable, "-m", "deploy.localstack.prepare"], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise StackError(f"preparing the database failed:\n{done.stderr[-3000:]}")
        prepared = json.loads(done.stdout.strip().splitlines()[-1])
        self.api_key = prepared["api_key"]
        self.admin_username, self.admin_password = prepared["admin_username"], prepared["admin_password"]

    def stop(self) -> None:
        """Stop everything the stack started, in reverse order; safe to call twice."""
        errors = []
        for step in (self._stop_sluice, self.nginx.stop, self.redis.stop, self.postgres.stop):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - stop the rest whatever one step does
                errors.append(f"{step.__qualname__}: {exc}")
        shutil.rmtree(self.directory, ignore_errors=True)
        if errors:
            raise StackError("; ".join(errors))

    def _stop_sluice(self) -> None:
        for process in self.processes:  # all drain at once
            if process.alive():
                process.process.send_signal(signal.SIGTERM)
        grace = float(self.env.get("SLUICE_SHUTDOWN_GRACE_SECONDS", 10))
        for process in self.processes:
            stop(process.process, timeout=grace + 20)

    def sql(self, query: str, params: tuple = ()) -> list[dict]:
        """Rows of `query` on the stack's database, as dicts."""
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(self.database_url, row_factory=dict_row, autocommit=True) as connection:
            return connection.execute(query, params).fetchall()

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
