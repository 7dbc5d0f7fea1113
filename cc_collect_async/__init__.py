"""Async client and nightly harvester for the CC live-streaming collect statistics API."""

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

__all__ = [
    "BEIJING",
    "DEFAULT_BASE_URL",
    "ENDPOINTS",
    "AccessRecord",
    "AdaptiveRateLimiter",
    "AnswerCardRecord",
    "AuthError",
    "BrainstormRecord",
    "CallStats",
    "ChatRecord",
    "ClientInfo",
    "CollectClient",
    "CollectError",
    "DecodeError",
    "Endpoint",
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
    "RetryPolicy",
    "RewardRecord",
    "RollcallRecord",
    "ServerError",
    "TransportError",
    "VoteRecord",
    "__version__",
    "converter",
    "parse_beijing_time",
    "structure",
]
