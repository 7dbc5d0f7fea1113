"""``cc-collect sync``: every night's records into a database, incrementally, exactly once.

DuckDB (one embedded file, the default) or PostgreSQL; the tables are described in
:mod:`.tables` and :mod:`.ddl`, the incremental rule in :mod:`.incremental`.
"""

from .backend import Backend
from .ddl import SCHEMA_VERSION
from .errors import (
    DatabaseBusyError,
    DatabaseError,
    DatabaseUsageError,
    NotADatabaseError,
    SchemaVersionError,
)
from .incremental import SyncPlan, plan_sync
from .open import open_backend
from .sink import DatabaseSink
from .sync import SyncReport, sync
from .tables import KIND_TABLES
from .target import DEFAULT_DATABASE, ENV_DATABASE_URL, DatabaseTarget, parse_target

__all__ = [
    "DEFAULT_DATABASE",
    "ENV_DATABASE_URL",
    "KIND_TABLES",
    "SCHEMA_VERSION",
    "Backend",
    "DatabaseBusyError",
    "DatabaseError",
    "DatabaseSink",
    "DatabaseTarget",
    "DatabaseUsageError",
    "NotADatabaseError",
    "SchemaVersionError",
    "SyncPlan",
    "SyncReport",
    "open_backend",
    "parse_target",
    "plan_sync",
    "sync",
]
