"""Redis and PostgreSQL for the stack. Redis: its own redis-server on a free port, so that a
test may stop it without touching anyone else's. PostgreSQL: the server on 127.0.0.1:5432
when one answers (Debian's cluster is started, and later stopped, only when none does), with
a fresh database that is dropped at the end; or, for a test that restarts it, a private
cluster of its own (PrivatePostgres)."""
from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
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
        _admin(self.PORT, statement)

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


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb) on a free loopback port, so that a test may
    stop and restart it without touching anyone else's. Runs as the `postgres` user when
    started by root (PostgreSQL refuses root). stop()/start() keep the port and the data."""

    def __init__(self, directory: Path) -> None:
        self.bin = _postgres_bin()
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.log_path = directory / "postgres.log"
        self.database = "sluice"
        self.process: subprocess.Popen | None = None
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def _as_owner(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", self._user, "--", *command] if self._user else command

    def start(self) -> None:
        fresh = not self.data.exists()
        if fresh:
            self._init()
        self.process = spawn(
            self._as_owner([str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.directory}",
                            "-c", "fsync=off", "-c", "max_connections=50"]),
            log_path=self.log_path,
        )
        wait_for(self._accepts, timeout=30, what="private PostgreSQL", process=self.process, log_path=self.log_path)
        if fresh:
            self._admin(f'CREATE DATABASE "{self.database}"')

    def _admin(self, statement: str) -> None:
        _admin(self.port, statement)

    def _init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._user:
            owner = pwd.getpwnam(self._user)
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
            self.log_path.touch()
            os.chown(self.log_path, owner.pw_uid, owner.pw_gid)
        done = subprocess.run(
            self._as_owner([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                            "--no-sync", "-E", "UTF8"]),
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise StackError(f"initdb failed: {done.stderr.strip()[-2000:]}")

    def _accepts(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(f"postgres://postgres@127.0.0.1:{self.port}/postgres", connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """A fast shutdown (SIGINT to the postmaster): open connections are cut, as in a restart."""
        if self.process is None:
            return
        try:
            os.kill(int((self.data / "postmaster.pid").read_text().split()[0]), signal.SIGINT)
            self.process.wait(timeout=20)
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            stop(self.process, timeout=5)
        self.process = None


def _admin(port: int, statement: str) -> None:
    """Run one statement as postgres on the server at 127.0.0.1:`port` (autocommit)."""
    import psycopg

    with psycopg.connect(f"postgres://postgres@127.0.0.1:{port}/postgres", autocommit=True) as connection:
        connection.execute(statement)


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise StackError("PostgreSQL's server binaries (initdb, postgres) are not installed.")
    return Path(initdb).parent
