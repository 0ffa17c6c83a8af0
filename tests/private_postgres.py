"""A PostgreSQL server of the test's own, on a free port and a data directory of its own, for
fault tests that restart or stop the database. It never touches the machine's server."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.deployments.support import free_port


def _bin_dir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    if candidates:
        return candidates[0].parent
    found = shutil.which("pg_ctl")
    if found is None:
        raise RuntimeError("The fault tests need PostgreSQL's server binaries (pg_ctl, initdb).")
    return Path(found).parent


@dataclass
class PrivatePostgres:
    port: int
    data: Path
    bin: Path

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/billing"

    def _run(self, *argv: str) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def _pg_ctl(self, action: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}"
        self._run(
            "pg_ctl", action, "-D", str(self.data / "db"), "-w", "-t", "60", "-m", "fast",
            "-o", options, "-l", str(self.data / "server.log"),
        )  # fmt: skip

    def restart(self) -> None:
        self._pg_ctl("restart")
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def dsn(self, database: str = "billing") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def query(self, sql: str, *params) -> list[tuple]:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    data = Path(tempfile.mkdtemp(prefix="billing-fault-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    server = PrivatePostgres(port=free_port(), data=data, bin=_bin_dir())
    try:
        server._run("initdb", "-D", str(data / "db"), "-U", "postgres", "-A", "trust", "-N")
        server._pg_ctl("start")
        server.wait_ready()
        with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE billing")
        yield server
    finally:
        if (data / "db" / "postmaster.pid").exists():
            server._pg_ctl("stop")
        shutil.rmtree(data, ignore_errors=True)
