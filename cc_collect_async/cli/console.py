"""What a person sees: one-line messages on stderr, JSON on stdout, and the library's own
log lines when asked for (``-v``)."""

from __future__ import annotations

import logging
from typing import Any, TextIO

from ..errors import AuthError
from ..json_codec import dumps
from .args import Credentials

__all__ = ["auth_message", "configure_logging", "error", "print_json", "say"]

_LOGGER = "cc_collect_async"


def configure_logging(verbose: int, stream: TextIO) -> None:
    """``-v``: retries and failures; ``-vv``: every request. Otherwise the library stays
    silent (its warnings would repeat what the failure list says, and break the display)."""
    logger = logging.getLogger(_LOGGER)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    if verbose:
        shown = logging.StreamHandler(stream)
        shown.setFormatter(logging.Formatter("cc-collect: %(levelname)s %(message)s"))
        logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
        logger.addHandler(shown)
    else:
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


def say(stream: TextIO, text: str) -> None:
    print(text, file=stream, flush=True)


def error(stream: TextIO, text: object) -> None:
    # One line, always: cron mails it, people grep it.
    print(f"cc-collect: error: {' '.join(str(text).split())}", file=stream, flush=True)


def auth_message(credentials: Credentials, exc: AuthError) -> str:
    return (
        f"authentication rejected by {credentials.base_url} ({exc.vendor_message or exc}); "
        "check CC_USERID and CC_API_KEY"
    )


def print_json(stdout: TextIO, data: Any) -> None:
    # Through the codec: a lone surrogate in a reply (a truncated emoji) is written as its
    # escape, where json.dumps would hand stdout a string it cannot encode.
    stdout.write(dumps(data, indent=True).decode() + "\n")
    stdout.flush()
