"""``--log-format json``: every line on stderr is one JSON object, for log shippers.

A nightly harvest under cron or a scheduler is read by machines: each line is
``{"time", "level", "event", "fields"}`` (time in UTC, ISO 8601). The command's own messages
(start, progress lines, summary, failures, errors) become events through a text stream that
turns each printed message into a log record, so the command code stays the same for
people and for machines; the library's logs (``-v``) go through the same formatter. The
standard library's ``logging`` does it all: no dependency.
"""

from __future__ import annotations

import argparse
import io
import logging
from datetime import datetime, timezone
from typing import Any, TextIO

from .. import json_codec

__all__ = ["FORMATS", "JsonFormatter", "JsonLinesStream", "add_option", "install"]

FORMATS = ("text", "json")
_LIBRARY = "cc_collect_async"
_COMMAND = "cc_collect_async.cli"
_PREFIX = "cc-collect: "


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text",
        help="json: every stderr line is one JSON object (time, level, event, fields)",
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``extra={"fields": {...}}`` fills ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = dict(getattr(record, "fields", None) or {})
        if record.name != _COMMAND:
            fields.setdefault("logger", record.name)
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "fields": fields,
        }
        return json_codec.dumps(entry).decode()


def _level(message: str) -> int:
    if message.startswith("error:"):
        return logging.ERROR
    if message.startswith(("incomplete", "interrupted", "failed", "abandoned")):
        return logging.WARNING
    return logging.INFO


class JsonLinesStream(io.TextIOBase):
    """A text stream whose every printed message becomes one log record.

    ``print`` writes the text and the newline separately, so text is gathered until a
    write ends a line; a message of several lines (the summary table) stays one event.
    """

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger
        self._pending: list[str] = []

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self._pending.append(text)
        if text.endswith("\n"):
            self._emit()
        return len(text)

    def flush(self) -> None:
        if self._pending and "".join(self._pending).strip():
            self._emit()

    def _emit(self) -> None:
        message = "".join(self._pending).strip("\n")
        self._pending.clear()
        if not message.strip():
            return
        message = message.strip()
        if message.startswith(_PREFIX):
            message = message[len(_PREFIX) :]
        self._logger.log(_level(message), "%s", message)

    def event(self, level: int, event: str, **fields: Any) -> None:
        """A structured event, beside the command's messages."""
        self._logger.log(level, "%s", event, extra={"fields": fields})


def install(stream: TextIO, verbose: int) -> JsonLinesStream:
    """Send the command's messages and the library's logs to ``stream`` as JSON lines;
    returns the stream the command should print its messages to."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    command = logging.getLogger(_COMMAND)
    library = logging.getLogger(_LIBRARY)
    for logger in (command, library):
        for old in list(logger.handlers):
            logger.removeHandler(old)
    command.addHandler(handler)
    command.setLevel(logging.INFO)
    command.propagate = False
    if verbose:
        library.addHandler(handler)
        library.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    else:
        library.addHandler(logging.NullHandler())
    library.propagate = False
    return JsonLinesStream(command)
