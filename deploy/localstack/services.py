"""Redis and PostgreSQL for the stack. Redis: its own redis-server on a free port, so that a
test may stop it without touching anyone else's. PostgreSQL: the server on 127.0.0.1:5432
when one answers (Debian's cluster is started, and later stopped, only when none does), with
a fresh database that is dropped at the end."""
from __future__ import annotations

import glob
import secrets
import shutil
import subprocess
from pathlib import Path

from .children import StackError, free_port, port_answers, spawn, stop, wait_for


class Redis:
    """A private redis-server on loopback, nothing saved to disk. stop()/start() keep the port."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("redis-server") is None:
            raise StackError("redis-server is not installed (Debian: apt-get install redis-server).")
        self.directory = directory
        self.port = free_port()
        self.log_path = directory / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = spawn(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--daemonize", "no"],
            log_path=self.log_path,
        )
        wait_for(lambda: port_answers(self.port), timeout=20, what="redis-server", process=self.process,
                 log_path=self.log_path)

    def stop(self) -> None:
        stop(self.process, timeout=10)
        self.process = None


class Postgres:
    """A fresh database on the PostgreSQL server at 127.0.0.1:5432 (user postgres, trust auth)."""

    PORT = 5432

    def __init__(self) -> None:
        self.started_cluster: str | None = None
        self.database = f"sluice_stack_{secrets.token_hex(4)}"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.PORT}/{self.database}"

    def start(self) -> None:
        if not port_answers(self.PORT):
            self._start_debian_cluster()
        self._admin(f'CREATE DATABASE "{self.database}"')

    def stop(self) -> None:
        try:
            self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            if self.started_cluster:
                subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", self.started_cluster, "main", "stop"],
                               check=False, capture_output=True)
                self.started_cluster = None

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(f"postgres://postgres@127.0.0.1:{self.PORT}/postgres", autocommit=True) as connection:
            connection.execute(statement)

    def _start_debian_cluster(self) -> None:
        versions = sorted(Path(path).name for path in glob.glob("/etc/postgresql/*"))
        if not versions or shutil.which("pg_ctlcluster") is None:
            raise StackError("No PostgreSQL answers on 127.0.0.1:5432 and no Debian cluster is installed "
                             "(apt-get install postgresql).")
        version = versions[-1]
        done = subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise StackError(f"pg_ctlcluster {version} main start failed: {done.stderr.strip()}")
        self.started_cluster = version
        wait_for(lambda: port_answers(self.PORT), timeout=30, what="PostgreSQL")
