"""The nightly harvest: every record of every kind for many lives at once."""

from .events import Batch, Progress, UnitResult
from .plan import ALL_KINDS, DEFAULT_KINDS, KINDS, Kind, Live, Unit, Window, parse_kinds
from .report import HarvestReport, KindCounts, UnitProblem
from .scheduler import Event, Harvester
from .sink import MemorySink, Sink

__all__ = [
    "ALL_KINDS",
    "DEFAULT_KINDS",
    "KINDS",
    "Batch",
    "Event",
    "HarvestReport",
    "Harvester",
    "Kind",
    "KindCounts",
    "Live",
    "MemorySink",
    "Progress",
    "Sink",
    "Unit",
    "UnitProblem",
    "UnitResult",
    "Window",
    "parse_kinds",
]
