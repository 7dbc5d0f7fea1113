"""The command line's grammar: the parser, the value parsers, and the checked options.

Everything a command needs arrives as one frozen options object; every mistake a person can
make on the command line (or in the environment) becomes a :class:`UsageError` with a
one-line message, before any request is sent and before any file is touched.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import NoReturn, TypeAlias

import attrs

from .. import __version__
from ..beijing import BEIJING, format_date, format_minute, parse_text
from ..client import DEFAULT_TIMEOUT, check_base_url
from ..core import DEFAULT_BASE_URL
from ..endpoints import ENDPOINTS
from ..harvest import ALL_KINDS, DEFAULT_KINDS, Window, parse_kinds
from ..harvest.request import FORMATS, Format, HarvestRequest
from . import json_logs, metrics_file

__all__ = [
    "EARLIEST",
    "LATEST",
    "CallOptions",
    "Credentials",
    "DemoOptions",
    "HarvestOptions",
    "LivesOptions",
    "UsageError",
    "add_connection_options",
    "add_display_options",
    "add_window_options",
    "build_parser",
    "credentials_of",
    "default_concurrency",
    "default_out",
    "parse_kinds_option",
    "parse_live",
    "parse_when",
]

ENV_USERID = "CC_USERID"
ENV_API_KEY = "CC_API_KEY"
ENV_BASE_URL = "CC_BASE_URL"

#: Requests in flight when neither --concurrency nor --rate says otherwise.
DEFAULT_CONCURRENCY = 8
#: The round trip --rate's default concurrency leaves room for, and its ceiling.
_ROUND_TRIP = 0.25
_MAX_DEFAULT_CONCURRENCY = 64

#: The times the command line accepts. Outside them date arithmetic and the conversions to
#: UTC overflow (year 1 minus a day, year 9999 plus one), and years before 1000 are written
#: without their leading zeros on the wire; no live of this vendor falls outside anyway.
EARLIEST = datetime(1970, 1, 1)
LATEST = datetime(9999, 12, 30, 23, 59)


class UsageError(Exception):
    """A mistake in the command line or the environment (exit code 2)."""


class ParseError(Exception):
    """argparse's error, as the whole line to print (exit code 2): raised rather than
    printed, so ``main`` can print it in the log format asked for."""


# -- value parsers (argparse ``type=``): a ValueError/ArgumentTypeError names the value -----


def parse_when(text: str) -> datetime:
    """``YYYY-MM-DD`` (midnight) or ``YYYY-MM-DD HH:MM``, naive Beijing time, from
    :data:`EARLIEST` to :data:`LATEST`."""
    try:
        when = parse_text(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a Beijing time as YYYY-MM-DD or 'YYYY-MM-DD HH:MM', got {text!r}"
        ) from None
    if not EARLIEST <= when <= LATEST:
        raise argparse.ArgumentTypeError(
            f"expected a time from {format_date(EARLIEST)} to {format_date(LATEST)}, got {text!r}"
        )
    return when


def parse_kinds_option(text: str) -> tuple[str, ...]:
    """A comma list of kinds, or ``all``."""
    if text.strip() == "all":
        return ALL_KINDS
    try:
        return parse_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_live(text: str) -> tuple[str, str]:
    """``ROOMID:LIVEID``."""
    roomid, sep, liveid = text.partition(":")
    if not sep or not roomid.strip() or not liveid.strip():
        raise argparse.ArgumentTypeError(f"expected ROOMID:LIVEID, got {text!r}")
    return roomid.strip(), liveid.strip()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


# -- checked options -----------------------------------------------------------------------


@attrs.frozen
class Credentials:
    """Who to be and where to go. The key never appears in a repr."""

    userid: str
    api_key: str = attrs.field(repr=False)
    base_url: str = DEFAULT_BASE_URL

    @classmethod
    def resolve(
        cls,
        userid: str | None,
        api_key: str | None,
        base_url: str | None,
        environ: Mapping[str, str],
    ) -> Credentials:
        """Options first, then the environment; a blank value counts as missing. The base URL
        is checked as the client will check it, so a bad one is a usage error here rather
        than a failed request later."""
        userid = (userid if userid is not None else environ.get(ENV_USERID, "")).strip()
        api_key = (api_key if api_key is not None else environ.get(ENV_API_KEY, "")).strip()
        missing = [
            f"{name} (or {flag})"
            for name, flag, value in (
                (ENV_USERID, "--userid", userid),
                (ENV_API_KEY, "--api-key", api_key),
            )
            if not value
        ]
        if missing:
            raise UsageError(f"no credentials: set {' and '.join(missing)} (blank counts as unset)")
        url = base_url if base_url is not None else environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        try:
            url = check_base_url(url)
        except ValueError as exc:
            source = "--base-url" if base_url is not None else ENV_BASE_URL
            raise UsageError(f"{source}: {exc}") from None
        return cls(userid, api_key, url)


@attrs.frozen(kw_only=True)
class Display:
    quiet: bool = False
    verbose: int = 0
    json: bool = False


@attrs.frozen(kw_only=True)
class HarvestOptions:
    credentials: Credentials
    #: Seconds for one attempt of a request in all (``--timeout``); None: the library's.
    timeout: float | None = None
    request: HarvestRequest
    out: Path
    concurrency: int | None = None
    rate: float | None = None
    display: Display = Display()
    #: "json": every stderr line is a JSON object (:mod:`.json_logs`).
    log_format: str = "text"
    #: Prometheus text file written at the end (:mod:`.metrics_file`).
    metrics_file: Path | None = None
    #: Starting rate of the adaptive limiter (the demo starts high; the sim has no limit).
    initial_rate: float | None = None


@attrs.frozen(kw_only=True)
class LivesOptions:
    credentials: Credentials
    timeout: float | None = None
    window: Window
    display: Display = Display()


@attrs.frozen(kw_only=True)
class CallOptions:
    credentials: Credentials
    timeout: float | None = None
    endpoint: str
    params: dict[str, str]
    method: str | None = None
    display: Display = Display()


@attrs.frozen(kw_only=True)
class DemoOptions:
    out: Path
    format: Format = "jsonl"
    display: Display = Display()


def default_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """Yesterday, midnight to midnight, Beijing time: the nightly case."""
    today = (now or datetime.now(BEIJING)).astimezone(BEIJING).date()
    until = datetime.combine(today, datetime.min.time())
    return until - timedelta(days=1), until


def resolve_window(
    since: datetime | None,
    until: datetime | None,
    rooms: Sequence[str],
    now: datetime | None = None,
) -> Window:
    """The window from ``--since``/``--until``: missing ``until`` is today 00:00, missing
    ``since`` is one day before ``until``."""
    if until is None:
        until = default_window(now)[1]
    if since is None:
        since = until - timedelta(days=1)
    if since >= until:
        raise UsageError(
            f"--since ({format_minute(since)}) must be before --until ({format_minute(until)}); "
            "until is exclusive"
        )
    return Window(since, until, tuple(dict.fromkeys(rooms)))


def default_out(request: HarvestRequest) -> Path:
    """``cc-harvest-2026-11-01`` for one whole day, ``cc-harvest-<since>_<until>`` else."""
    window = request.window
    if window is None:
        return Path("cc-harvest-lives")

    def stamp(moment: datetime) -> str:
        if moment.time() == datetime.min.time():
            return format_date(moment)
        # A file name: no blank and no colon (Windows and some shells choke on them).
        return format_minute(moment).replace(" ", "T").replace(":", "")

    since, until = window.since, window.until
    whole_day = since.time() == until.time() == datetime.min.time()
    if whole_day and until - since == timedelta(days=1):
        return Path(f"cc-harvest-{stamp(since)}")
    return Path(f"cc-harvest-{stamp(since)}_{stamp(until)}")


# -- the parser ----------------------------------------------------------------------------

_DESCRIPTION = """\
Harvest the CC live-streaming "collect" statistics API: every chat line, enter/exit record,
vote, answer card and roll-call answer of every live in a window, into files.

Credentials come from CC_USERID and CC_API_KEY (and CC_BASE_URL for another server);
--userid/--api-key/--base-url override them. Times are Beijing time.
"""

_EXIT_CODES = """\
exit codes:
  0    every unit complete (or nothing left to do)
  1    some units failed (listed on stderr and in manifest.json); rerun to retry them
  2    usage or configuration error (bad option, missing credentials, --out holding
       another harvest or other files)
  3    authentication rejected (check CC_USERID / CC_API_KEY)
  4    output error (--out not writable or a file, disk full, directory in use)
  130  interrupted (complete units were committed; rerun to finish)
"""

_HARVEST_EPILOG = f"""\
kinds: {", ".join(ALL_KINDS)} (or "all"); default {",".join(DEFAULT_KINDS)}

The output directory holds lives.jsonl, one <kind>.jsonl (or .parquet) per kind and
manifest.json. Each (live, kind) unit is committed atomically: rerun the same command after
a crash, a kill or failed units and only the missing units are fetched; rerunning a finished
harvest does nothing.

{_EXIT_CODES}"""


# Option groups: each adds its options to a subcommand's parser. A command takes the groups
# it needs; a new option that several commands share belongs in a group here.


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Who to be, where to go and how long to wait: ``--userid``, ``--api-key``,
    ``--base-url``, ``--timeout`` (read back by :func:`credentials_of` and ``ns.timeout``)."""
    group = parser.add_argument_group("credentials and server")
    group.add_argument("--userid", metavar="ID", help=f"account id (default ${ENV_USERID})")
    group.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"API key (default ${ENV_API_KEY}; prefer the variable: a command line is "
        "visible to other users of the machine)",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help=f"API base URL (default ${ENV_BASE_URL}, else {DEFAULT_BASE_URL})",
    )
    group.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="give up on one attempt of a request after SECONDS in all (connect, send and the "
        "whole reply); the attempt is then retried like any network failure "
        f"(default {DEFAULT_TIMEOUT:g})",
    )


def add_display_options(parser: argparse.ArgumentParser, *, json_flag: bool) -> None:
    """``-q``, ``-v`` and, for commands that end with a manifest, ``--json``."""
    group = parser.add_argument_group("output")
    group.add_argument(
        "-q", "--quiet", action="store_true", help="no progress or summary (errors still shown)"
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log retries and failures to stderr (-vv: every request)",
    )
    if json_flag:
        group.add_argument(
            "--json", action="store_true", help="print manifest.json to stdout at the end"
        )


def add_window_options(parser: argparse.ArgumentParser) -> None:
    """``--since``, ``--until``, ``--room`` (read back by :func:`resolve_window`)."""
    group = parser.add_argument_group("window (Beijing time; default: yesterday)")
    group.add_argument(
        "--since",
        type=parse_when,
        metavar="WHEN",
        help="lives that started at or after WHEN (YYYY-MM-DD or 'YYYY-MM-DD HH:MM')",
    )
    group.add_argument(
        "--until",
        type=parse_when,
        metavar="WHEN",
        help="... and before WHEN (exclusive; default today 00:00)",
    )
    group.add_argument(
        "--room",
        action="append",
        default=[],
        metavar="ID",
        help="only this room (repeatable; default all rooms)",
    )


def add_kinds_option(group: argparse._ActionsContainer) -> None:
    """``--kinds``: a comma list of kinds or ``all``, the default kinds when left out."""
    group.add_argument(
        "--kinds",
        type=parse_kinds_option,
        default=DEFAULT_KINDS,
        metavar="LIST",
        help=f"comma list of kinds (default {','.join(DEFAULT_KINDS)}; 'all' for every kind)",
    )


def _add_what_options(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what and where")
    what.add_argument(
        "--live",
        action="append",
        default=[],
        type=parse_live,
        metavar="ROOMID:LIVEID",
        help="harvest this live instead of a window (repeatable)",
    )
    add_kinds_option(what)
    what.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output directory (default ./cc-harvest-<window>)",
    )
    what.add_argument(
        "--format",
        choices=FORMATS,
        default="jsonl",
        help="record files as JSON lines (default) or Parquet (needs the parquet extra)",
    )


def add_pace_options(parser: argparse.ArgumentParser) -> None:
    pace = parser.add_argument_group("pace")
    pace.add_argument(
        "--concurrency",
        type=_positive_int,
        metavar="N",
        help="requests in flight at once (default 8; with --rate R, R/4 up to 64)",
    )
    pace.add_argument(
        "--rate",
        type=_positive_float,
        metavar="R",
        help="requests per second (default: adaptive, slows down when the server says so)",
    )


# Subcommands: one function each, adding its parser to ``cc-collect``'s subparsers.

Commands: TypeAlias = "argparse._SubParsersAction[_Parser]"


def _add_harvest(commands: Commands) -> None:
    harvest = commands.add_parser(
        "harvest",
        help="fetch every record of a window's lives into a directory",
        description="Fetch every record of the chosen kinds for every live in a window\n"
        "(or for the lives named with --live) into --out.",
        epilog=_HARVEST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_window_options(harvest)
    _add_what_options(harvest)
    add_pace_options(harvest)
    add_connection_options(harvest)
    add_display_options(harvest, json_flag=True)
    json_logs.add_option(harvest)
    metrics_file.add_option(harvest)


def _add_lives(commands: Commands) -> None:
    lives = commands.add_parser(
        "lives",
        help="list the lives of a window as JSON lines",
        description="Print the lives that started in a window, one JSON object per line.",
    )
    add_window_options(lives)
    add_connection_options(lives)
    add_display_options(lives, json_flag=False)


def _add_call(commands: Commands) -> None:
    endpoints = "\n".join(f"  {name:<13} {e.summary}" for name, e in ENDPOINTS.items())
    call = commands.add_parser(
        "call",
        help="call one endpoint and print its JSON envelope",
        description="Call one endpoint by its table name and print the reply's envelope.",
        epilog=f"endpoints:\n{endpoints}\n\nexample: cc-collect call chat roomid=R liveid=L",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    call.add_argument("endpoint", metavar="ENDPOINT", help="endpoint name (see below)")
    call.add_argument("params", nargs="*", metavar="KEY=VALUE", help="request parameters")
    call.add_argument("--method", choices=("GET", "POST"), help="override the HTTP method")
    add_connection_options(call)
    add_display_options(call, json_flag=False)


def _add_sim(commands: Commands) -> None:
    # The simulator parses its own options (cc-collect sim --help).
    commands.add_parser(
        "sim",
        add_help=False,
        help="run the simulator on loopback (see: cc-collect sim --help)",
        description="Run the collect API simulator on loopback until Ctrl-C.",
    )


def _add_demo(commands: Commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="harvest from a local simulator and check the files against its truth",
        description="Start the simulator on a free loopback port (with a little latency and "
        "a few injected faults), harvest its sample window (all kinds) and verify the files "
        "against the simulator's ground truth. Takes a few seconds.",
    )
    demo.add_argument(
        "--out", type=Path, default=Path("cc-demo"), metavar="DIR", help="default ./cc-demo"
    )
    demo.add_argument("--format", choices=FORMATS, default="jsonl")
    add_display_options(demo, json_flag=True)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: cron mails it and people grep it, and the usage block
    argparse prints first would push the message itself out of sight."""

    def error(self, message: str) -> NoReturn:
        raise ParseError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cc-collect",
        description=_DESCRIPTION,
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from .sync import add_sync_parser

    for add in (_add_harvest, add_sync_parser, _add_lives, _add_call, _add_sim, _add_demo):
        add(commands)
    return parser


# -- from the parsed command line to checked options ----------------------------------------


def _display(ns: argparse.Namespace) -> Display:
    return Display(
        quiet=bool(ns.quiet), verbose=int(ns.verbose), json=bool(getattr(ns, "json", False))
    )


def credentials_of(ns: argparse.Namespace, environ: Mapping[str, str]) -> Credentials:
    """The checked credentials of a command that took :func:`add_connection_options`."""
    return Credentials.resolve(ns.userid, ns.api_key, ns.base_url, environ)


def harvest_options(
    ns: argparse.Namespace,
    environ: Mapping[str, str] = os.environ,
    now: datetime | None = None,
) -> HarvestOptions:
    lives: list[tuple[str, str]] = list(dict.fromkeys(ns.live))
    if lives and (ns.since or ns.until or ns.room):
        raise UsageError("--live names the lives to harvest: leave out --since, --until, --room")
    window = None if lives else resolve_window(ns.since, ns.until, ns.room, now)
    request = HarvestRequest(kinds=ns.kinds, window=window, lives=tuple(lives), format=ns.format)
    if request.format == "parquet":
        _require_parquet()
    return HarvestOptions(
        credentials=credentials_of(ns, environ),
        timeout=ns.timeout,
        request=request,
        out=ns.out or default_out(request),
        concurrency=ns.concurrency or default_concurrency(ns.rate),
        rate=ns.rate,
        display=_display(ns),
        log_format=ns.log_format,
        metrics_file=metrics_path(ns.metrics_file),
    )


def metrics_path(path: Path | None) -> Path | None:
    """``--metrics-file``, checked before anything runs: its directory must exist, and it
    must not be a directory itself (found only when written, it failed a whole night)."""
    if path is not None and not path.parent.is_dir():
        raise UsageError(f"--metrics-file: directory {path.parent} does not exist; create it")
    if path is not None and path.is_dir():
        raise UsageError(f"--metrics-file: {path} is a directory; name a file in it")
    return path


def default_concurrency(rate: float | None) -> int:
    """Enough requests in flight for ``rate`` to be reached at a 250 ms round trip: a rate
    of R per second needs R x round trip of them (8 held a 100/s harvest at 75%)."""
    if rate is None:
        return DEFAULT_CONCURRENCY
    wanted = math.ceil(rate * _ROUND_TRIP)
    return min(_MAX_DEFAULT_CONCURRENCY, max(DEFAULT_CONCURRENCY, wanted))


def lives_options(
    ns: argparse.Namespace,
    environ: Mapping[str, str] = os.environ,
    now: datetime | None = None,
) -> LivesOptions:
    window = resolve_window(ns.since, ns.until, ns.room, now)
    return LivesOptions(
        credentials=credentials_of(ns, environ),
        timeout=ns.timeout,
        window=window,
        display=_display(ns),
    )


def call_options(ns: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> CallOptions:
    if ns.endpoint not in ENDPOINTS:
        raise UsageError(f"unknown endpoint {ns.endpoint!r}; choose from {', '.join(ENDPOINTS)}")
    params: dict[str, str] = {}
    for item in ns.params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"expected KEY=VALUE, got {item!r}")
        params[key] = value
    return CallOptions(
        credentials=credentials_of(ns, environ),
        timeout=ns.timeout,
        endpoint=ns.endpoint,
        params=params,
        method=ns.method,
        display=_display(ns),
    )


def demo_options(ns: argparse.Namespace) -> DemoOptions:
    if ns.format == "parquet":
        _require_parquet()
    return DemoOptions(out=ns.out, format=ns.format, display=_display(ns))


def _require_parquet() -> None:
    from ..harvest.parquet import ParquetUnavailableError, require_pyarrow

    try:
        require_pyarrow()
    except ParquetUnavailableError as exc:
        raise UsageError(str(exc)) from None
