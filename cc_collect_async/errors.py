"""The typed errors every failure of a collect call turns into.

One base class, :class:`CollectError`, so a caller can catch everything the library raises;
one subclass per way a call can fail, each saying whether trying again can help. The request
parameters are kept for diagnosis; they never hold the API key (it is not a parameter: it
only salts the signature), and the signature itself is stripped as well.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "AuthError",
    "CollectError",
    "DecodeError",
    "InvalidRequestError",
    "RateLimitedError",
    "ServerError",
    "TransportError",
]


def _without_signature(params: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in params.items() if k not in ("hash", "time")}


class CollectError(Exception):
    """Base class of every error raised by cc_collect_async."""

    #: Whether the same call, signed afresh, may succeed later.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status: int | None = None,
        vendor_message: str | None = None,
        params: Mapping[str, object] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.status = status
        self.vendor_message = vendor_message
        self.params = _without_signature(params or {})
        self.retry_after = retry_after
        #: How many attempts were made before this error was raised (set by the request path).
        self.attempts = 0

    def locate(
        self,
        endpoint: str,
        params: Mapping[str, object],
        attempts: int,
        status: int | None = None,
    ) -> None:
        """Record where the error happened, keeping what the raiser already said: the request
        path calls this once per failed attempt, so every error it raises carries them."""
        if self.endpoint is None:
            self.endpoint = endpoint
        if not self.params:
            self.params = _without_signature(params)
        if self.status is None:
            self.status = status
        self.attempts = attempts

    def __str__(self) -> str:
        where = f" [{self.endpoint}]" if self.endpoint else ""
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{self.message}{where}{status}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, endpoint={self.endpoint!r}, "
            f"status={self.status!r}, vendor_message={self.vendor_message!r}, "
            f"params={self.params!r})"
        )


class AuthError(CollectError):
    """The server rejected the signature, its time, or the account. Check the credentials."""


class InvalidRequestError(CollectError):
    """A parameter is missing or invalid; the same request will fail again."""


class RateLimitedError(CollectError):
    """The server said the account calls too fast (HTTP 429 or a TOO_MANY_REQUEST envelope)."""

    retryable = True


class ServerError(CollectError):
    """The server failed (HTTP 5xx or a PROCESS_FAIL envelope); usually passes."""

    retryable = True


class TransportError(CollectError):
    """The request or its reply was lost: connect/read error, dropped connection, timeout."""

    retryable = True


class DecodeError(CollectError):
    """The reply was not a complete JSON envelope (truncated or garbled body), or its data
    does not fit what the endpoint returns (not a list, a record that does not fit its model)."""

    retryable = True
