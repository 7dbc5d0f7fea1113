"""The output directory's crash-safety protocol: committed units in one spool per kind,
recorded by a journal of byte ranges.

While a harvest is incomplete its directory holds, besides what a reader wants::

    DIR/.lock                 held while a run writes DIR (:class:`.filesystem.DirectoryLock`)
    DIR/manifest.json         ``complete: false`` and the runs so far
    DIR/.parts/<kind>.jsonl   the spool: records of every committed unit of a kind, one unit
                              after the other, as JSON lines
    DIR/.parts/lives.jsonl    one line per live each time a run saw it (the last one counts)
    DIR/.parts/units.jsonl    the journal: one line per committed unit: its byte range in
                              its kind's spool, records, pages, duplicates, issues
    DIR/.parts/*.tmp          a unit too big to keep in memory while it is received

The protocol, which is what lets a run be killed at any instant (SIGKILL included) and a
rerun of the same command finish with every record exactly once:

1. **Receive.** A unit's records are kept aside (in memory, or in a temporary file once
   they pass 128 KB) until the harvest says the unit is complete. A unit that fails, or is
   still open when the run ends, is dropped: it never reached a spool.
2. **Commit.** The unit's lines are appended to its kind's spool, then its journal line
   (with the byte range) to the journal; each write is flushed to the kernel before the
   next unit. Only a journal line makes a unit committed, so a killed process leaves at
   most an unjournaled tail in one spool or a torn last journal line.
3. **Recover**, when a run opens the directory: temporaries are removed, the torn tail of
   the journal and of the lives spool is cut off; each unit's latest journal entry is
   checked against its spool (the range exists, holds as many lines as the entry counts,
   ends with a newline); a unit that fails the check is dropped and fetched again; the
   journal is rewritten without the dropped entries, and each spool is cut after its last
   committed range. What remains are the units a rerun skips (``Harvester(skip=...)``).
4. **Assemble**, when a run ends: the final files are written from the committed ranges
   (lives in start-time order, each kind's units in the order of their lives) under
   temporary names, fsynced and renamed into place, so a final file is either absent, from
   an earlier run, or whole. A failed assembly removes its temporary file. Then
   ``manifest.json`` is written (also fsynced and renamed); a rerun that finds it
   ``complete`` makes no request at all.
5. **Clean up.** Only after a manifest says ``complete`` is ``.parts`` removed; a rerun that
   finds a complete manifest beside a ``.parts`` (killed in between) finishes the removal.

Durability: spools and the journal are not fsynced (one fsync per unit would cost more than
the fetch on a fast link); step 3 catches what a power loss took, since a range that did
not reach the disk no longer holds its line count. Appending to a few spools costs far less
CPU per request than creating a file per unit and per live (``benchmarks/README.md``,
scaling).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from ..json_codec import dumps_line, loads
from .filesystem import TMP, output_errors, remove_quietly, write_atomic
from .plan import Unit

__all__ = ["PARTS", "Journal", "LiveOrder", "PendingUnit", "Range", "UnitRanges"]

#: The directory of an incomplete harvest's committed units.
PARTS = ".parts"
#: Names inside PARTS besides the kinds' spools (no kind may be called so).
LIVES = "lives"
UNITS = "units"

#: A unit bigger than this goes to a temporary file while it is received: 32 big units in
#: flight stay a few MB, and a file created per 500-odd records costs nothing to speak of.
_SPILL_AT = 128 << 10
_CHUNK = 1 << 20

#: (offset, length) of bytes in a spool.
Range = tuple[int, int]


class LiveOrder:
    """The lives of a harvest in the order of ``lives.jsonl``, held as one short string per
    live (``start\\0room\\0liveid\\0offset``): with 10,000 lives, tuples per live added
    megabytes to the CLI's peak memory (``benchmarks/``: scaling)."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    def offsets(self) -> Iterator[int]:
        """Where each live's line starts in the lives spool."""
        for key in self._keys:
            yield int(key.rpartition("\0")[2])

    def positions(self) -> dict[str, int]:
        """Each live's place in the order, by id."""
        return {key.rsplit("\0", 2)[1]: index for index, key in enumerate(self._keys)}


class UnitRanges:
    """One kind's committed ranges in the order of the lives (two arrays, not a tuple per
    unit); units of lives no listing mentions any more still hold committed records and
    come last, by live id."""

    def __init__(self, lives: int) -> None:
        self._offsets = array("q", [-1]) * lives
        self._lengths = array("q", [0]) * lives
        self._others: dict[str, Range] = {}

    def put(self, position: int | None, liveid: str, where: Range) -> None:
        if position is None:
            self._others[liveid] = where
        else:
            self._offsets[position], self._lengths[position] = where

    def __iter__(self) -> Iterator[Range]:
        for offset, length in zip(self._offsets, self._lengths, strict=True):
            if offset >= 0:
                yield offset, length
        for liveid in sorted(self._others):
            yield self._others[liveid]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class PendingUnit:
    """A unit being received: its JSON lines, in memory up to 128 KB, then in a temporary
    file (a huge live must not hold its whole unit in memory)."""

    __slots__ = ("_chunks", "_file", "_spill", "records", "size")

    def __init__(self, spill: str) -> None:
        self._spill = spill
        self._chunks: list[bytes] = []
        self._file: IO[bytes] | None = None
        self.records = 0
        self.size = 0

    def add(self, lines: bytes, records: int) -> None:
        if self._file is None and self.size + len(lines) > _SPILL_AT:
            self._file = open(self._spill, "w+b")  # noqa: SIM115 - closed by discard()
            self._file.writelines(self._chunks)
            self._chunks.clear()
        if self._file is None:
            self._chunks.append(lines)
        else:
            self._file.write(lines)
        self.size += len(lines)
        self.records += records

    def pieces(self) -> Iterator[bytes]:
        """The unit's bytes, in order."""
        if self._file is None:
            yield from self._chunks
            return
        self._file.flush()
        self._file.seek(0)
        while chunk := self._file.read(_CHUNK):
            yield chunk

    def discard(self) -> None:
        self._chunks.clear()
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
            remove_quietly(self._spill)


def _entry(line: bytes) -> dict[str, Any] | None:
    """A journal line, or None when it is torn or not one of ours."""
    try:
        entry = loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    fields = (entry.get("kind"), entry.get("liveid"))
    numbers = (entry.get("offset"), entry.get("length"), entry.get("records"))
    if not all(isinstance(f, str) for f in fields) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers
    ):
        return None
    return entry


def _holds(file: IO[bytes], size: int, entry: Mapping[str, Any]) -> bool:
    """Whether the spool holds the entry's range whole: as many lines as it counts."""
    offset, length, records = entry["offset"], entry["length"], entry["records"]
    if offset + length > size:
        return False
    if length == 0:
        return bool(records == 0)
    file.seek(offset)
    newlines, remaining, last = 0, length, b""
    while remaining:
        chunk = file.read(min(_CHUNK, remaining))
        if not chunk:
            return False
        newlines += chunk.count(b"\n")
        remaining -= len(chunk)
        last = chunk
    return newlines == records and last.endswith(b"\n")


def copy_ranges(path: str | os.PathLike[str], ranges: Iterable[Range], out: IO[bytes]) -> None:
    """Copy byte ranges of ``path``, in order, to ``out``."""
    with open(path, "rb") as source:
        for offset, length in ranges:
            source.seek(offset)
            while length > 0:
                chunk = source.read(min(_CHUNK, length))
                if not chunk:
                    raise OSError(f"{path} is shorter than its journal says")
                out.write(chunk)
                length -= len(chunk)


def range_lines(path: str | os.PathLike[str], ranges: Iterable[Range]) -> Iterator[bytes]:
    """The lines in byte ranges of ``path``, in order."""
    with open(path, "rb") as source:
        for offset, length in ranges:
            source.seek(offset)
            end = offset + length
            while source.tell() < end:
                line = source.readline()
                if not line:
                    break
                yield line


class Journal:
    """The ``.parts`` directory of a harvest: see the module's description of the protocol.

    :meth:`open` recovers what earlier runs committed and opens the spools for appending;
    :meth:`begin`, :meth:`commit` and :meth:`save_live` write; after :meth:`close`, the
    reading methods give the committed ranges for assembly.
    """

    def __init__(self, directory: Path, kinds: Sequence[str]) -> None:
        self.directory = directory
        self.kinds = tuple(kinds)
        self._spools: dict[str, IO[bytes]] = {}
        self._ends: dict[str, int] = {}
        self._journal: IO[bytes] | None = None
        self._lives: IO[bytes] | None = None
        self._spills = 0

    def spool(self, kind: str) -> Path:
        return self.directory / f"{kind}.jsonl"

    @property
    def _journal_path(self) -> Path:
        return self.directory / f"{UNITS}.jsonl"

    @property
    def _lives_path(self) -> Path:
        return self.directory / f"{LIVES}.jsonl"

    # -- recovering -------------------------------------------------------------------------

    def open(self) -> tuple[list[dict[str, Any]], set[str]]:
        """Recover (step 3) and open for appending.

        Returns the journal entries of the committed units and the ids of the lives seen.
        """
        with output_errors("create", self.directory):
            self.directory.mkdir(parents=True, exist_ok=True)
        with output_errors("read", self.directory):
            for entry in self.directory.iterdir():
                if entry.name.endswith(TMP):
                    entry.unlink()
        lives = self._recover_lives()
        committed = self._recover_units()
        try:
            for kind in self.kinds:
                path = self.spool(kind)
                with output_errors("write", path):
                    self._spools[kind] = open(path, "ab")  # noqa: SIM115 - closed by close()
                    self._ends[kind] = self._spools[kind].tell()
            with output_errors("write", self._journal_path):
                self._journal = open(self._journal_path, "ab")  # noqa: SIM115
            with output_errors("write", self._lives_path):
                self._lives = open(self._lives_path, "ab")  # noqa: SIM115
        except BaseException:
            self.close()
            raise
        return committed, lives

    def _recover_lives(self) -> set[str]:
        seen: set[str] = set()
        path = self._lives_path
        if not path.exists():
            return seen
        with output_errors("read", path), open(path, "r+b") as file:
            end = 0
            for line in file:
                if not line.endswith(b"\n"):
                    break  # torn by a kill: the live is listed again by the rerun
                end += len(line)
                liveid = _liveid(line)
                if liveid is not None:
                    seen.add(liveid)
            file.truncate(end)
        return seen

    def _recover_units(self) -> list[dict[str, Any]]:
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        rewrite = False
        if self._journal_path.exists():
            with output_errors("read", self._journal_path), open(self._journal_path, "rb") as file:
                for line in file:
                    entry = _entry(line)
                    if entry is None or entry["kind"] not in self.kinds:
                        rewrite = True  # torn by a kill, or not ours
                        continue
                    key = (entry["liveid"], entry["kind"])
                    rewrite = rewrite or key in latest
                    latest[key] = entry
        committed: list[dict[str, Any]] = []
        for kind in self.kinds:
            entries = sorted((e for e in latest.values() if e["kind"] == kind), key=_offset)
            kept = self._check_spool(kind, entries)
            rewrite = rewrite or len(kept) < len(entries)
            committed += kept
        if rewrite:
            with output_errors("write", self._journal_path):
                write_atomic(
                    self._journal_path, b"".join(dumps_line(e) for e in committed), fsync=False
                )
        return committed

    def _check_spool(self, kind: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The entries whose ranges the spool holds whole; the spool is cut after the last."""
        path = self.spool(kind)
        if not path.exists():
            return []
        kept: list[dict[str, Any]] = []
        with output_errors("read", path), open(path, "r+b") as file:
            size = os.fstat(file.fileno()).st_size
            for entry in entries:
                # Lost to a power cut before it reached the disk: fetched again.
                if _holds(file, size, entry):
                    kept.append(entry)
            end = max((e["offset"] + e["length"] for e in kept), default=0)
            if size > end:
                file.truncate(end)  # a unit killed between its spool and its journal line
        return kept

    # -- writing ----------------------------------------------------------------------------

    def save_live(self, wire: Mapping[str, Any]) -> None:
        """Record a live as seen (its listing item, or its ids)."""
        file = self._opened(self._lives)
        with output_errors("write", self._lives_path):
            file.write(dumps_line(dict(wire)))
            file.flush()

    def begin(self, unit: Unit) -> PendingUnit:
        self._spills += 1
        return PendingUnit(str(self.directory / f"{unit.kind}.{self._spills}{TMP}"))

    def commit(
        self,
        unit: Unit,
        pending: PendingUnit,
        *,
        pages: int,
        duplicates: int,
        issues: Sequence[str],
    ) -> dict[str, Any]:
        """Append the unit to its spool, then its entry to the journal (step 2); returns
        the entry."""
        kind = unit.kind
        spool = self._opened(self._spools.get(kind))
        journal = self._opened(self._journal)
        offset = self._ends[kind]
        with output_errors("write", self.spool(kind)):
            for piece in pending.pieces():
                spool.write(piece)
            spool.flush()
        self._ends[kind] = offset + pending.size
        entry = {
            "kind": kind,
            "roomid": unit.live.roomid,
            "liveid": unit.live.liveid,
            "offset": offset,
            "length": pending.size,
            "records": pending.records,
            "pages": pages,
            "duplicates": duplicates,
            "issues": list(issues),
            "at": _now(),
        }
        with output_errors("write", self._journal_path):
            journal.write(dumps_line(entry))
            journal.flush()
        pending.discard()
        return entry

    def _opened(self, file: IO[bytes] | None) -> IO[bytes]:
        if file is None:
            raise RuntimeError(f"the journal in {self.directory} is not open")
        return file

    def close(self) -> None:
        """Close the spools and the journal (every commit was flushed already)."""
        files = [*self._spools.values(), self._journal, self._lives]
        self._spools.clear()
        self._journal = self._lives = None
        for file in files:
            if file is not None:
                with contextlib.suppress(OSError):
                    file.close()

    # -- reading, for assembly --------------------------------------------------------------

    def lives_in_order(self) -> LiveOrder:
        """Each live seen by any run (its latest line), by start time, then room, then id."""
        latest: dict[str, str] = {}
        if self._lives_path.exists():
            with output_errors("read", self._lives_path), open(self._lives_path, "rb") as file:
                offset = 0
                for line in file:
                    try:
                        live = loads(line)
                        liveid = str(live["liveid"])
                        start, room = live.get("start_time") or "", live.get("roomid")
                    except (ValueError, KeyError, TypeError, AttributeError):
                        pass  # not a whole line: the rerun listed the live again
                    else:
                        latest[liveid] = f"{start}\0{room}\0{liveid}\0{offset}"
                    offset += len(line)
        return LiveOrder(sorted(latest.values()))

    def copy_lives(self, order: LiveOrder, out: IO[bytes]) -> None:
        if not len(order):
            return
        with open(self._lives_path, "rb") as source:
            for offset in order.offsets():
                source.seek(offset)
                out.write(source.readline())

    def unit_ranges(self, kind: str, positions: Mapping[str, int]) -> UnitRanges:
        """The committed ranges of ``kind``, in the order of the lives' ``positions``."""
        ranges = UnitRanges(len(positions))
        if self._journal_path.exists():
            with output_errors("read", self._journal_path), open(self._journal_path, "rb") as f:
                for line in f:
                    entry = _entry(line)
                    if entry is not None and entry["kind"] == kind:
                        where = (entry["offset"], entry["length"])
                        ranges.put(positions.get(entry["liveid"]), entry["liveid"], where)
        return ranges

    def copy_kind(self, kind: str, ranges: Iterable[Range], out: IO[bytes]) -> None:
        copy_ranges(self.spool(kind), ranges, out)

    def kind_lines(self, kind: str, ranges: Iterable[Range]) -> Iterator[bytes]:
        return range_lines(self.spool(kind), ranges)

    # -- cleaning up ------------------------------------------------------------------------

    def remove(self) -> None:
        """Delete the whole ``.parts`` directory (step 5)."""
        self.close()
        if not self.directory.exists():
            return
        for entry in self.directory.iterdir():
            with output_errors("remove", entry):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)  # a layout of an earlier version
                else:
                    entry.unlink()
        with output_errors("remove", self.directory):
            self.directory.rmdir()


def _offset(entry: Mapping[str, Any]) -> int:
    return int(entry["offset"])


def _liveid(line: bytes) -> str | None:
    try:
        live = loads(line)
        return str(live["liveid"])
    except (ValueError, KeyError, TypeError):
        return None
