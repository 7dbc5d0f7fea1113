"""What can go wrong with the database a sync writes to, as the command line tells it apart.

:class:`DatabaseError` is the output side (exit code 4: unreachable, rejected, in use, disk
full); :class:`DatabaseUsageError` is a database that is the wrong thing to point at (exit
code 2: not a DuckDB file, tables of a newer version, an extra not installed, a bad URL).
Messages are one line and never carry a password.
"""

from __future__ import annotations

__all__ = [
    "DatabaseBusyError",
    "DatabaseError",
    "DatabaseUsageError",
    "NotADatabaseError",
    "SchemaVersionError",
]


class DatabaseError(Exception):
    """The database cannot be used or written: unreachable, rejected, full, broken."""


class DatabaseBusyError(DatabaseError):
    """Another sync (or another program) holds the database or this account's lock."""


class DatabaseUsageError(Exception):
    """The database named is the wrong thing to sync into; nothing was fetched."""


class NotADatabaseError(DatabaseUsageError):
    """The file is not a DuckDB database, or the schema holds tables cc-collect did not make."""


class SchemaVersionError(DatabaseUsageError):
    """The tables were made by a newer cc_collect_async than this one."""
