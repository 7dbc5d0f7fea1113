"""Async client and nightly harvester for the CC live-streaming collect statistics API.

The public names below are imported when first used (PEP 562), not with the package: the
``cc-collect`` command runs from inside this package, and its Ctrl-C handling can only begin
once this file has run, so this file imports nothing heavy (the HTTP stack alone takes a
noticeable part of a second). ``from cc_collect_async import CollectClient`` works as ever.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import CacheStats, ResponseCache
    from .client import CollectClient
    from .converter import converter, parse_beijing_time, structure
    from .core import DEFAULT_BASE_URL, CallStats
    from .endpoints import ENDPOINTS, Endpoint, RawPage
    from .errors import (
        AuthError,
        CollectError,
        DecodeError,
        InvalidRequestError,
        RateLimitedError,
        ServerError,
        TransportError,
    )
    from .governor import Governor
    from .harvest.day import harvest_day
    from .instrumentation import (
        AttemptEvent,
        CacheEvent,
        CallEvent,
        Instrumentation,
        UnitEvent,
    )
    from .models import (
        BEIJING,
        AccessRecord,
        AnswerCardRecord,
        BrainstormRecord,
        ChatRecord,
        ClientInfo,
        LiveDuration,
        LiveRecord,
        LiveSummary,
        LiveUserCount,
        MaxParallel,
        Platform,
        RewardRecord,
        RollcallRecord,
        VoteRecord,
    )
    from .pagination import Page, Paginated
    from .ratelimit import AdaptiveRateLimiter, RateLimiter
    from .retry import RetryPolicy

__version__ = "0.1.0"

#: Each public name by the module that defines it.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "cache": (
        "CacheStats",
        "ResponseCache",
    ),
    "client": ("CollectClient",),
    "converter": (
        "converter",
        "parse_beijing_time",
        "structure",
    ),
    "core": (
        "DEFAULT_BASE_URL",
        "CallStats",
    ),
    "endpoints": (
        "ENDPOINTS",
        "Endpoint",
        "RawPage",
    ),
    "errors": (
        "AuthError",
        "CollectError",
        "DecodeError",
        "InvalidRequestError",
        "RateLimitedError",
        "ServerError",
        "TransportError",
    ),
    "governor": ("Governor",),
    "harvest.day": ("harvest_day",),
    "instrumentation": (
        "AttemptEvent",
        "CacheEvent",
        "CallEvent",
        "Instrumentation",
        "UnitEvent",
    ),
    "models": (
        "BEIJING",
        "AccessRecord",
        "AnswerCardRecord",
        "BrainstormRecord",
        "ChatRecord",
        "ClientInfo",
        "LiveDuration",
        "LiveRecord",
        "LiveSummary",
        "LiveUserCount",
        "MaxParallel",
        "Platform",
        "RewardRecord",
        "RollcallRecord",
        "VoteRecord",
    ),
    "pagination": (
        "Page",
        "Paginated",
    ),
    "ratelimit": (
        "AdaptiveRateLimiter",
        "RateLimiter",
    ),
    "retry": ("RetryPolicy",),
}
_HOMES = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "BEIJING",
    "DEFAULT_BASE_URL",
    "ENDPOINTS",
    "AccessRecord",
    "AdaptiveRateLimiter",
    "AnswerCardRecord",
    "AttemptEvent",
    "AuthError",
    "BrainstormRecord",
    "CacheEvent",
    "CacheStats",
    "CallEvent",
    "CallStats",
    "ChatRecord",
    "ClientInfo",
    "CollectClient",
    "CollectError",
    "DecodeError",
    "Endpoint",
    "Governor",
    "Instrumentation",
    "InvalidRequestError",
    "LiveDuration",
    "LiveRecord",
    "LiveSummary",
    "LiveUserCount",
    "MaxParallel",
    "Page",
    "Paginated",
    "Platform",
    "RateLimitedError",
    "RateLimiter",
    "RawPage",
    "ResponseCache",
    "RetryPolicy",
    "RewardRecord",
    "RollcallRecord",
    "ServerError",
    "TransportError",
    "UnitEvent",
    "VoteRecord",
    "__version__",
    "converter",
    "harvest_day",
    "parse_beijing_time",
    "structure",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


class _Package(types.ModuleType):
    """The package's module type: importing the submodule ``converter`` must not replace the
    exported ``converter`` object of the same name (the import system sets every submodule
    as an attribute of its package once loaded)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _HOMES and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
