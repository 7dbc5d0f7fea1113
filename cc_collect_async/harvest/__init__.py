"""The nightly harvest: every record of every kind for many lives at once."""

from .day import harvest_day
from .events import Batch, Progress, UnitResult
from .filesystem import OutputError
from .listing import list_live_pages, list_lives
from .manifest import read_manifest
from .outdir import DirectorySink, read_records
from .plan import (
    ALL_KINDS,
    DEFAULT_KINDS,
    KINDS,
    EndpointKind,
    Kind,
    Live,
    SummaryKind,
    Unit,
    Window,
    parse_kinds,
)
from .report import HarvestReport, KindCounts, UnitProblem
from .request import HarvestRequest
from .scheduler import Event, Harvester, SkipLookup
from .sink import MemorySink, Sink

__all__ = [
    "ALL_KINDS",
    "DEFAULT_KINDS",
    "KINDS",
    "Batch",
    "DirectorySink",
    "EndpointKind",
    "Event",
    "HarvestReport",
    "HarvestRequest",
    "Harvester",
    "Kind",
    "KindCounts",
    "Live",
    "MemorySink",
    "OutputError",
    "Progress",
    "Sink",
    "SkipLookup",
    "SummaryKind",
    "Unit",
    "UnitProblem",
    "UnitResult",
    "Window",
    "harvest_day",
    "list_live_pages",
    "list_lives",
    "parse_kinds",
    "read_manifest",
    "read_records",
]
