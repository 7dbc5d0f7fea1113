"""The output directory's dealings with the file system: one error type for a person to
read, writes that land whole or not at all, and the lock that keeps a second run out."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "TMP",
    "DirectoryLock",
    "OutputBusyError",
    "OutputError",
    "fsync_dir",
    "output_errors",
    "remove_quietly",
    "replace_atomically",
    "temporary_path",
    "write_atomic",
]

#: Suffix of every file written under a temporary name; a rerun removes what it finds.
TMP = ".tmp"


class OutputError(Exception):
    """The output directory cannot be written: permissions, a full disk, a file in the way.

    The message is one line meant for a person (path and the system's reason).
    """


class OutputBusyError(OutputError):
    """Another run holds the directory's lock."""


def os_error(action: str, path: str | os.PathLike[str], exc: OSError) -> OutputError:
    reason = exc.strerror or str(exc)
    return OutputError(f"cannot {action} {os.fspath(path)}: {reason}")


@contextlib.contextmanager
def output_errors(action: str, path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn an OSError into an OutputError naming the path (no traceback for a full disk)."""
    try:
        yield
    except OSError as exc:
        raise os_error(action, path, exc) from exc


def temporary_path(path: str | os.PathLike[str]) -> str:
    """Where ``path`` is written before it is renamed into place (a hidden sibling)."""
    directory, name = os.path.split(os.fspath(path))
    return os.path.join(directory, f".{name}{TMP}")


def remove_quietly(path: str | os.PathLike[str]) -> None:
    """Remove a file if it is there; for clean-ups on a path that already failed."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename in ``path`` durable (POSIX; directories cannot be opened on Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_atomically(
    path: str | os.PathLike[str], fill: Callable[[IO[bytes]], object], *, fsync: bool
) -> None:
    """Write a file with ``fill(file)`` under a temporary name and rename it to ``path``: a
    reader sees the old file or the new one, never a part. When writing fails the temporary
    is removed (a full disk gets its space back) and the error goes on."""
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as file:
            fill(file)
            if fsync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    if fsync:
        fsync_dir(os.path.dirname(os.fspath(path)) or ".")


def write_atomic(path: str | os.PathLike[str], data: bytes, *, fsync: bool) -> None:
    """:func:`replace_atomically` with ``data`` as the file's content."""
    replace_atomically(path, lambda file: file.write(data), fsync=fsync)


class DirectoryLock:
    """An exclusive advisory lock on a directory, held while a run writes into it.

    The lock file stays behind on release: deleting it would race with a run that has just
    opened it. It holds the pid of the holder, for the message a second run prints.
    """

    NAME = ".lock"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        """Take the lock; :class:`OutputBusyError` when another process holds it."""
        path = self.directory / self.NAME
        with output_errors("write to the output directory", self.directory):
            # Held open until release(): the lock lives as long as the descriptor.
            file = open(path, "a+", encoding="utf-8")  # noqa: SIM115
        if fcntl is not None:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                file.seek(0)
                holder = file.read().strip() or "unknown"
                file.close()
                raise OutputBusyError(
                    f"{self.directory} is in use by another cc-collect run (pid {holder})"
                ) from None
        try:
            file.seek(0)
            file.truncate()
            file.write(str(os.getpid()))
            file.flush()
        except OSError as exc:
            file.close()
            raise os_error("write to", self.directory, exc) from exc
        self._file = file

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
