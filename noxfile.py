"""Sessions: tests, lint, typecheck, bench, older_duckdb, integrations. `nox -s tests` is
what CI runs; `older_duckdb` and `integrations` (Dagster and Airflow, a few hundred MB each)
are run by hand."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy", "--strict", "cc_collect_async")


@nox.session
@nox.parametrize("duckdb", ["1.1.3", "1.4.3"])
def older_duckdb(session: nox.Session, duckdb: str) -> None:
    """The DuckDB sync tests on older DuckDBs pyproject allows (by hand): the oldest, and
    1.4, the long-term release. Each broke syncs there once: before 2.0 DuckDB needs pytz,
    1.1 took no time without seconds and refused to insert a key deleted in the same
    transaction, and 1.2-1.4 gave its CSV reader a 30 MB buffer, over the sync's memory."""
    session.install("-e", ".[test]")
    session.install(f"duckdb=={duckdb}")
    session.run(
        "python", "-m", "pytest", "-k", "not postgres", *session.posargs,
        *(str(path) for path in sorted(Path("tests").glob("test_sync_*.py"))),
    )  # fmt: skip


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the simulator over loopback TCP; `nox -s bench -- --quick` for CI."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "benchmarks", *session.posargs)


# Two simulator accounts, so the examples show one unit per account.
_ACCOUNTS = {"ACCOUNTA": "sim-key-account-a", "ACCOUNTB": "sim-key-account-b"}
_DAY = "2026-11-01"


@nox.session
@nox.parametrize("engine", ["dagster", "airflow"])
def integrations(session: nox.Session, engine: str) -> None:
    """The scheduler examples run for real against the simulator with two accounts:
    `dagster asset materialize` per (account, day) partition, `airflow dags test` once (one
    mapped task per account). Each engine in its own virtualenv; not in the default sessions
    because of their size."""
    session.install("-e", ".[sim]", "apache-airflow" if engine == "airflow" else "dagster")
    python = str(Path(session.bin, "python"))
    argv = [python, "-m", "cc_collect_async.sim", "--port", "0", "--lives", "12"]
    for account, key in _ACCOUNTS.items():
        argv += ["--account", f"{account}:{key}"]
    work = Path(tempfile.mkdtemp(prefix=f"cc-{engine}-"))
    sim = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert sim.stdout is not None
        url = sim.stdout.readline().split()[1]
        env = {
            "CC_ACCOUNTS": ",".join(_ACCOUNTS),
            "CC_BASE_URL": url,
            "CC_DATA_DIR": str(work / "data"),
            **{f"CC_API_KEY_{account}": key for account, key in _ACCOUNTS.items()},
        }
        if engine == "dagster":
            home = work / "dagster"
            home.mkdir()
            shutil.copy("examples/dagster/dagster.yaml", home)
            for account in _ACCOUNTS:
                session.run(
                    "dagster",
                    "asset",
                    "materialize",
                    "-f",
                    "examples/dagster/defs.py",
                    "--select",
                    "cc_day",
                    "--partition",
                    f"{account}|{_DAY}",
                    env={**env, "DAGSTER_HOME": str(home)},
                )
        else:
            airflow = {
                **env,
                "AIRFLOW_HOME": str(work / "airflow"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(Path("examples/airflow").resolve()),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            }
            session.run("airflow", "db", "migrate", env=airflow, silent=True)
            session.run("airflow", "dags", "test", "cc_harvest", _DAY, env=airflow)
        for account in _ACCOUNTS:
            manifest = json.loads((work / "data" / account / _DAY / "manifest.json").read_text())
            if not manifest["complete"]:
                session.error(f"{engine}: {account} {_DAY} is not complete")
            session.log(
                f"{engine}: {account} {_DAY}: complete, {manifest['lives']} lives, "
                f"{manifest['records']} records, {manifest['requests']} requests"
            )
    finally:
        sim.terminate()
        sim.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
