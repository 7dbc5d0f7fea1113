"""Command-line options of ``python -m cc_collect_async.sim``, both ways.

:func:`parse_args` turns flags into a :class:`DatasetSpec` and a :class:`SimConfig`;
:func:`to_argv` turns them back into flags so :func:`~cc_collect_async.sim.spawn` can start
a subprocess that builds the very same simulator. The flags are derived from the attrs
fields, so a new knob is a new flag without touching this module.
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn

import attrs

from .behaviour import FAULT_KINDS, SimConfig
from .data import DatasetSpec

__all__ = ["SimOptions", "build_parser", "parse_args", "to_argv"]

# Config fields that need their own syntax (or, for the clock and the stall's blocking
# call, cannot cross a process).
_SPECIAL = {"accounts", "path_rates", "fault_kinds", "clock", "block", "rate", "retry_after"}


_HELP = {
    "stall": "probability per request that the server's event loop blocks before the rate check",
    "stall_live": "probability that the first request for a live blocks the server (data built)",
    "stall_min": "shortest stall, seconds (default 0.02)",
    "stall_max": "longest stall, seconds (default 0.15)",
}


@attrs.frozen(kw_only=True)
class SimOptions:
    spec: DatasetSpec
    config: SimConfig
    host: str
    port: int


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parse_window_start(text: str) -> datetime:
    for layout in ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, layout)
        except ValueError:
            continue
    raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD[ HH:MM], got {text!r}")


def _parse_account(text: str) -> tuple[str, str]:
    userid, sep, key = text.partition(":")
    if not sep or not userid or not key:
        raise argparse.ArgumentTypeError("expected USERID:API_KEY")
    return userid, key


def _parse_path_rate(text: str) -> tuple[str, tuple[float, int]]:
    path, sep, limit = text.partition("=")
    rate, sep2, burst = limit.partition(":")
    try:
        if not sep or not sep2:
            raise ValueError
        return path, (float(rate), int(burst))
    except ValueError:
        raise argparse.ArgumentTypeError("expected PATH=RATE:BURST") from None


def _parse_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown fault kinds {unknown}; known: {FAULT_KINDS}")
    return kinds


def _loopback(text: str) -> str:
    if text == "localhost":
        return text
    try:
        if ipaddress.ip_address(text).is_loopback:
            return text
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"the simulator only listens on loopback, not {text!r}")


class _Parser(argparse.ArgumentParser):
    """One line for an error, not the usage block (dozens of options) above it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(prog: str = "python -m cc_collect_async.sim") -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description=(
            "Run the CC collect API simulator on loopback. Prints 'URL <base_url>' and one "
            "'ACCOUNT <userid> <api_key>' line per account, then serves until SIGINT/SIGTERM."
        ),
    )
    parser.add_argument("--host", type=_loopback, default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    data = parser.add_argument_group("data set")
    for field in attrs.fields(DatasetSpec):
        kind: Any = _parse_window_start if field.name == "window_start" else int
        data.add_argument(_flag(field.name), type=kind, default=None, metavar=field.name.upper())
    knobs = parser.add_argument_group("behaviour")
    for field in attrs.fields(SimConfig):
        if field.name in _SPECIAL:
            continue
        kind = int if isinstance(field.default, int) else float
        knobs.add_argument(
            _flag(field.name),
            type=kind,
            default=None,
            metavar=field.name.upper(),
            help=_HELP.get(field.name),
        )
    knobs.add_argument("--rate", type=float, default=None, help="requests/s per account")
    knobs.add_argument(
        "--retry-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="what a 429 advertises (default: the wait for a token, at least 1 s; "
        "60 for a per-minute quota)",
    )
    knobs.add_argument(
        "--account",
        type=_parse_account,
        action="append",
        default=None,
        metavar="USERID:API_KEY",
        help="an account (repeatable); default: the demo account",
    )
    knobs.add_argument(
        "--path-rate",
        type=_parse_path_rate,
        action="append",
        default=None,
        metavar="PATH=RATE:BURST",
        help="an extra per-account bucket for one path (repeatable)",
    )
    knobs.add_argument(
        "--fault-kinds",
        type=_parse_kinds,
        default=None,
        metavar="KIND,...",
        help=f"faults to draw from (default all: {','.join(FAULT_KINDS)})",
    )
    return parser


def parse_args(
    argv: Sequence[str] | None = None, prog: str = "python -m cc_collect_async.sim"
) -> SimOptions:
    """The simulator's options; a value it refuses (a negative count, say) is a usage
    error (exit 2), as a malformed one is."""
    parser = build_parser(prog)
    namespace = parser.parse_args(argv)
    try:
        return _options(namespace)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))


def _options(namespace: argparse.Namespace) -> SimOptions:
    values = vars(namespace)
    spec_args = {
        field.name: values[field.name]
        for field in attrs.fields(DatasetSpec)
        if values[field.name] is not None
    }
    config_args: dict[str, Any] = {
        field.name: values[field.name]
        for field in attrs.fields(SimConfig)
        if field.name not in _SPECIAL and values[field.name] is not None
    }
    if namespace.rate is not None:
        config_args["rate"] = namespace.rate
    if namespace.retry_after is not None:
        config_args["retry_after"] = namespace.retry_after
    if namespace.account:
        config_args["accounts"] = dict(namespace.account)
    if namespace.path_rate:
        config_args["path_rates"] = dict(namespace.path_rate)
    if namespace.fault_kinds is not None:
        config_args["fault_kinds"] = namespace.fault_kinds
    return SimOptions(
        spec=DatasetSpec(**spec_args),
        config=SimConfig(**config_args),
        host=namespace.host,
        port=namespace.port,
    )


def to_argv(spec: DatasetSpec | None = None, config: SimConfig | None = None) -> list[str]:
    """Flags that rebuild ``spec`` and ``config`` in another process (defaults omitted)."""
    argv: list[str] = []
    if spec is not None:
        for field in attrs.fields(DatasetSpec):
            value = getattr(spec, field.name)
            if value == field.default:
                continue
            text = value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else value
            argv += [_flag(field.name), str(text)]
    if config is not None:
        default = SimConfig()
        if config.clock is not default.clock or config.block is not default.block:
            raise ValueError(
                "a custom SimConfig.clock or SimConfig.block cannot be passed to another process"
            )
        for field in attrs.fields(SimConfig):
            value = getattr(config, field.name)
            if field.name in ("clock", "block") or value == getattr(default, field.name):
                continue
            if field.name == "accounts":
                for userid, key in value.items():
                    argv += ["--account", f"{userid}:{key}"]
            elif field.name == "path_rates":
                for path, (rate, burst) in value.items():
                    argv += ["--path-rate", f"{path}={rate!r}:{burst}"]
            elif field.name == "fault_kinds":
                argv += ["--fault-kinds", ",".join(value)]
            else:
                argv += [_flag(field.name), repr(value)]
    return argv
