"""A real PostgreSQL server for the sync tests: initdb in a temporary directory, on a free
loopback port, fsync off, stopped with ``pg_ctl stop -m immediate`` at the end of the session.

``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres`` user
(``runuser -u postgres``). Where PostgreSQL is not installed the tests that need it skip
with a message, unless ``CC_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator

import pytest

__all__ = ["PostgresServer", "PostgresUnavailable", "postgres_server", "running_postgres"]

REQUIRE = "CC_REQUIRE_POSTGRES"
#: Loopback connections need it (so a wrong one can be tested); distinctive, so a leak is
#: found by a plain search.
PASSWORD = "pg-Secr3t-pw"


class PostgresServer:
    """A running cluster: ``url(dbname)`` for a connection, ``fresh_database()`` for a new
    empty database per test."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def url(
        self, dbname: str = "postgres", password: str = PASSWORD, user: str = "postgres"
    ) -> str:
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{dbname}"

    def fresh_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"PostgreSQL is required ({REQUIRE}=1) but {reason}")
    pytest.skip(f"PostgreSQL tests need a local PostgreSQL server: {reason}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresUnavailable(Exception):
    """This machine cannot run a PostgreSQL server here (the reason says why)."""


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A throwaway cluster (also used by ``benchmarks/``); raises PostgresUnavailable."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        raise PostgresUnavailable("initdb and pg_ctl are not on PATH (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PostgresUnavailable("psycopg is not installed (the postgres extra)") from None
    as_user: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable(
                "running as root and there is no 'postgres' user to run initdb as"
            ) from None
        as_user = ["runuser", "-u", "postgres", "--"]
    base = tempfile.mkdtemp(prefix="cc-pg-")
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    data = os.path.join(base, "data")
    password_file = os.path.join(base, "password")
    with open(password_file, "w") as file:
        file.write(PASSWORD)
    if owner is not None:
        os.chown(password_file, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    initialise = [str(initdb), "-D", data, "-U", "postgres", "--pwfile", password_file]
    initialise += ["--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8"]
    subprocess.run([*as_user, *initialise], check=True, capture_output=True)
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = os.path.join(base, "log")
    start = [str(pg_ctl), "-D", data, "-o", options, "-l", log, "-w", "start"]
    subprocess.run([*as_user, *start], check=True, capture_output=True)
    try:
        yield PostgresServer("127.0.0.1", port)
    finally:
        subprocess.run(
            [*as_user, str(pg_ctl), "-D", data, "stop", "-m", "immediate"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        _unavailable(str(exc))
