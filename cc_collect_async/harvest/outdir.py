"""The directory sink: a harvest written to files, one atomic commit per unit, resumable.

Layout of an output directory::

    DIR/lives.jsonl          one line per live harvested (its /collect/live/record item)
    DIR/<kind>.jsonl         one line per record, vendor fields as received + liveid/roomid
    DIR/<kind>.parquet       the same rows, with ``format="parquet"``
    DIR/manifest.json        what was asked, what was fetched, what failed; ``complete``
    DIR/.parts/<kind>/<liveid>.jsonl   committed units (kept until the harvest is complete)
    DIR/.parts/lives/<liveid>.json     the lives seen
    DIR/.parts/units.jsonl   journal: one line per committed unit (pages, records, issues)
    DIR/.lock                held while a run writes DIR

Why this shape: a unit's records go to a temporary file and are renamed into ``.parts``
only when the harvest says the unit is complete, so a run killed at any instant (SIGKILL
included) leaves only whole units behind under their final names. A rerun with the same
request skips those units (``Harvester(skip=...)``) and fetches the rest; the final files are
assembled from the parts into temporary files and renamed into place, so a final file is
either absent, from an earlier close, or whole. ``manifest.json`` is written before the
first request (``complete: false``) and again at close; a rerun of a complete harvest reads
it and makes no request at all.

Durability: parts are not fsynced (one fsync per unit would cost more than the fetch on a
fast link); the journal records each unit's record count, and a part that disagrees with it
after a power loss is fetched again. The assembled files and the manifest are fsynced
before they are renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal
from urllib.parse import quote, unquote

import anyio
import attrs

from .events import Batch, UnitResult
from .plan import KINDS, Live, Unit, Window, parse_kinds
from .report import HarvestReport

try:  # orjson writes a record line several times faster than json (DESIGN.md)
    import orjson

    def _orjson_line(record: object) -> bytes:
        try:
            return bytes(orjson.dumps(record)) + b"\n"
        except TypeError:  # an integer beyond 64 bits: json handles those
            return _json_line(record)

    _loads: Callable[[bytes], Any] = orjson.loads
    _line: Callable[[object], bytes] = _orjson_line
except ImportError:  # pragma: no cover - exercised where orjson is absent
    _loads = json.loads

    def _fallback_line(record: object) -> bytes:
        return _json_line(record)

    _line = _fallback_line

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FORMATS",
    "MANIFEST",
    "DifferentHarvestError",
    "DirectorySink",
    "Format",
    "HarvestRequest",
    "NotAHarvestDirectoryError",
    "OutputBusyError",
    "OutputError",
    "encode_line",
    "read_jsonl",
    "read_manifest",
    "read_records",
    "remove_harvest",
]

MANIFEST = "manifest.json"
FORMATS: tuple[str, ...] = ("jsonl", "parquet")
Format = Literal["jsonl", "parquet"]

_PARTS = ".parts"
_LIVES = "lives"
_JOURNAL = "units.jsonl"
_LOCK = ".lock"
_TMP = ".tmp"


def _json_line(record: object) -> bytes:
    # Same as orjson: UTF-8 as is (no \u escapes), no spaces; one record per line.
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def encode_line(record: object) -> bytes:
    """One JSON line, UTF-8, non-ASCII kept as is, ending in a newline."""
    return _line(record)


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records of a JSON lines file, one dict per line."""
    with open(path, "rb") as file:
        for line in file:
            if line.strip():
                yield _loads(line)


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``manifest.json`` of a harvest directory."""
    manifest: dict[str, Any] = _loads(Path(directory, MANIFEST).read_bytes())
    return manifest


def read_records(directory: str | os.PathLike[str], kind: str) -> Iterator[dict[str, Any]]:
    """The rows of one kind (or ``"lives"``) of a harvest, whichever format it was written in.

    Parquet rows come back with nested values decoded and absent fields as None.
    """
    files = read_manifest(directory)["files"]
    path = Path(directory, files[kind])
    if path.suffix == ".parquet":
        from .parquet import read_parquet

        yield from read_parquet(path)
    else:
        yield from read_jsonl(path)


class OutputError(Exception):
    """The output directory cannot be written: permissions, a full disk, a file in the way.

    The message is one line meant for a person (path and the system's reason).
    """


class OutputBusyError(OutputError):
    """Another run holds the directory's lock."""


class DifferentHarvestError(Exception):
    """The directory holds a harvest of a different request (window, lives, kinds, format)."""


class NotAHarvestDirectoryError(Exception):
    """The directory is not empty and holds no harvest: refusing to write files into it."""


def _os_error(action: str, path: str | Path, exc: OSError) -> OutputError:
    reason = exc.strerror or str(exc)
    return OutputError(f"cannot {action} {path}: {reason}")


@contextlib.contextmanager
def _io(action: str, path: str | Path) -> Iterator[None]:
    """Turn an OSError into an OutputError naming the path (no traceback for a full disk)."""
    try:
        yield
    except OSError as exc:
        raise _os_error(action, path, exc) from exc


def _beijing_text(value: datetime) -> str:
    return value.isoformat(timespec="minutes")


def _pairs(lives: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(roomid), str(liveid)) for roomid, liveid in lives)


@attrs.frozen(kw_only=True)
class HarvestRequest:
    """What a harvest in a directory was asked for; two runs resume each other only when
    their requests are equal (kinds, rooms and lives compared as sets)."""

    kinds: tuple[str, ...] = attrs.field(converter=parse_kinds)
    window: Window | None = None
    lives: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    format: Format = "jsonl"

    def __attrs_post_init__(self) -> None:
        if (self.window is None) == (not self.lives):
            raise ValueError("a harvest request has either a window or a list of lives")
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; choose from {', '.join(FORMATS)}")

    def to_json(self) -> dict[str, Any]:
        window = self.window
        return {
            "window": None
            if window is None
            else {
                "since": _beijing_text(window.since),
                "until": _beijing_text(window.until),
                "rooms": list(window.rooms),
            },
            "lives": [{"roomid": r, "liveid": lv} for r, lv in self.lives] or None,
            "kinds": list(self.kinds),
            "format": self.format,
        }

    @staticmethod
    def identity(data: Mapping[str, Any]) -> dict[str, Any]:
        """The comparable core of a request's JSON form: order does not matter."""
        window = data.get("window")
        lives = data.get("lives") or []
        return {
            "window": None
            if window is None
            else (window.get("since"), window.get("until"), sorted(window.get("rooms") or [])),
            "lives": sorted((lv.get("roomid"), lv.get("liveid")) for lv in lives),
            "kinds": sorted(data.get("kinds") or []),
            "format": data.get("format"),
        }

    def describe(self) -> str:
        """A short phrase for messages: the window (Beijing time) or the number of lives."""
        if self.window is None:
            return f"{len(self.lives)} live(s)"
        fmt = "%Y-%m-%d %H:%M"
        rooms = f", rooms {', '.join(self.window.rooms)}" if self.window.rooms else ""
        return (
            f"lives started {self.window.since.strftime(fmt)} to "
            f"{self.window.until.strftime(fmt)} (Beijing time{rooms})"
        )


@attrs.define
class _OpenPart:
    """A unit being received: its temporary file and what went into it."""

    tmp: str
    file: IO[bytes]
    records: int = 0


def _part_name(liveid: str, suffix: str) -> str:
    # A live id named on the command line may hold anything; quoting keeps it one file name.
    return quote(liveid, safe="") + suffix


def _liveid_of(name: str, suffix: str) -> str:
    return unquote(name[: -len(suffix)])


def _fsync_dir(path: Path) -> None:
    # Makes a rename durable on POSIX; directories cannot be opened this way on Windows.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomic(path: str | Path, data: bytes, *, fsync: bool) -> None:
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}{_TMP}")
    with open(tmp, "wb") as file:
        file.write(data)
        if fsync:
            file.flush()
            os.fsync(file.fileno())
    os.replace(tmp, path)
    if fsync:
        _fsync_dir(Path(directory))


def _count_lines(path: Path) -> int:
    with open(path, "rb") as file:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))


def _count_entries(directory: str | Path, suffix: str) -> int:
    with _io("read", directory):
        return sum(1 for name in os.listdir(directory) if name.endswith(suffix))


def _totals() -> dict[str, int]:
    return {"units": 0, "pages": 0, "records": 0, "duplicates": 0}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class DirectorySink:
    """A :class:`~cc_collect_async.harvest.Sink` that writes a harvest into a directory.

    Use it as a context manager around the harvest: entering takes the directory's lock,
    checks that the directory is empty or holds a harvest of the same ``request``, and reads
    which units an earlier run committed (:attr:`skip`, for ``Harvester(skip=...)``). When
    :attr:`already_complete` is true there is nothing to do and nothing has been written.
    ``close`` (called by ``Harvester.run``) assembles the final files and the manifest;
    :attr:`manifest` then holds what was written.

    Raises :class:`OutputError` (cannot write), :class:`OutputBusyError` (another run holds
    the lock), :class:`DifferentHarvestError` and :class:`NotAHarvestDirectoryError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        request: HarvestRequest,
        *,
        source: Mapping[str, str] | None = None,
        version: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.request = request
        #: Where the data came from (base URL, account id); recorded, never compared.
        self.source = dict(source or {})
        self.version = version or _package_version()
        self.already_complete = False
        #: (liveid, kind) of units committed by earlier runs.
        self.skip: frozenset[tuple[str, str]] = frozenset()
        #: The manifest as last written (or as found, when already complete).
        self.manifest: dict[str, Any] | None = None
        self._previous: dict[str, Any] | None = None
        self._pending: dict[Unit, _OpenPart] = {}
        self._lock_file: IO[str] | None = None
        self._journal: IO[bytes] | None = None
        self._failed_io = False
        self._started_at = _now()
        # What the committed units hold, per kind, kept up to date as units are committed:
        # the manifest never needs the whole journal or a scan of the parts (flat memory).
        self._totals = {kind: _totals() for kind in request.kinds}
        self._issues: list[dict[str, Any]] = []
        self._lives_seen = 0
        self._part_dirs = {k: str(self._kind_dir(k)) for k in (_LIVES, *request.kinds)}

    def __repr__(self) -> str:
        return f"DirectorySink({str(self.path)!r}, {self.request.describe()!r})"

    # -- paths ------------------------------------------------------------------------------

    @property
    def _parts(self) -> Path:
        return self.path / _PARTS

    def _part_path(self, kind: str, liveid: str, suffix: str) -> str:
        # Plain strings: pathlib interns every name it parses, which grew with the units.
        return os.path.join(self._part_dirs[kind], _part_name(liveid, suffix))

    def _kind_dir(self, kind: str) -> Path:
        return self._parts / kind

    def final_files(self) -> dict[str, str]:
        """The file each kind (and the lives) ends up in, relative to the directory."""
        ext = "parquet" if self.request.format == "parquet" else "jsonl"
        return {"lives": "lives.jsonl", **{k: f"{k}.{ext}" for k in self.request.kinds}}

    # -- opening ----------------------------------------------------------------------------

    def __enter__(self) -> DirectorySink:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def open(self) -> None:
        """Lock the directory, check it, find committed units, write a first manifest."""
        path = self.path
        if path.exists() and not path.is_dir():
            raise OutputError(f"cannot use {path} as the output directory: it is a file")
        with _io("create the output directory", path):
            path.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._previous = self._read_manifest()
            if self._previous is None:
                self._check_foreign()
            elif self._previous.get("complete") is True:
                self.already_complete = True
                self.manifest = self._previous
                return
            self._clean_temporaries()
            for kind in (_LIVES, *self.request.kinds):
                with _io("create", self._kind_dir(kind)):
                    self._kind_dir(kind).mkdir(parents=True, exist_ok=True)
            self.skip = frozenset(self._committed_units())
            self._lives_seen = _count_entries(self._kind_dir(_LIVES), ".json")
            with _io("write", self._parts / _JOURNAL):
                # Open for the sink's lifetime: one append per committed unit.
                self._journal = open(self._parts / _JOURNAL, "ab")  # noqa: SIM115
            self.manifest = self._build_manifest(None, outcome="running")
            self._write_manifest(self.manifest)
        except BaseException:
            self.release()
            raise

    def _drop_pending(self) -> None:
        """Discard the parts of units that never ended, and close the journal."""
        for part in self._pending.values():
            self._discard(part)
        self._pending.clear()
        if self._journal is not None:
            with contextlib.suppress(OSError):
                self._journal.close()
            self._journal = None

    def release(self) -> None:
        """Close the journal and drop the lock (the lock file stays: deleting it would race)."""
        self._drop_pending()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _lock(self) -> None:
        lock_path = self.path / _LOCK
        with _io("write to the output directory", self.path):
            # Held open until release(): the lock lives as long as the descriptor.
            file = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115
        if fcntl is not None:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                file.seek(0)
                holder = file.read().strip() or "unknown"
                file.close()
                raise OutputBusyError(
                    f"{self.path} is in use by another cc-collect run (pid {holder})"
                ) from None
        try:
            file.seek(0)
            file.truncate()
            file.write(str(os.getpid()))
            file.flush()
        except OSError as exc:
            file.close()
            raise _os_error("write to", self.path, exc) from exc
        self._lock_file = file

    def _read_manifest(self) -> dict[str, Any] | None:
        manifest_path = self.path / MANIFEST
        try:
            data = manifest_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error("read", manifest_path, exc) from exc
        try:
            manifest = _loads(data)
            request = manifest["request"]
            assert isinstance(request, dict)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise NotAHarvestDirectoryError(
                f"{manifest_path} is not a cc-collect manifest; choose another --out"
            ) from None
        if HarvestRequest.identity(request) != HarvestRequest.identity(self.request.to_json()):
            raise DifferentHarvestError(
                f"{self.path} holds a different harvest ({_describe_json(request)}); "
                "choose another --out or remove it"
            )
        assert isinstance(manifest, dict)
        return manifest

    def _check_foreign(self) -> None:
        ours = {_PARTS, _LOCK, MANIFEST, *self.final_files().values()}
        foreign = sorted(
            entry.name
            for entry in self.path.iterdir()
            if entry.name not in ours and not entry.name.endswith(_TMP)
        )
        if foreign:
            raise NotAHarvestDirectoryError(
                f"{self.path} is not empty and holds no cc-collect harvest "
                f"(found {', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
                "choose an empty or new --out"
            )

    def _clean_temporaries(self) -> None:
        """Remove what a killed run was writing: never a complete unit, never a final file."""
        dirs = [self.path]
        if self._parts.is_dir():
            dirs += [d for d in self._parts.iterdir() if d.is_dir()]
        for directory in dirs:
            for entry in directory.iterdir():
                if entry.name.endswith(_TMP):
                    with _io("remove", entry):
                        entry.unlink()

    def _journal_entries(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The latest journal entry of each unit, by (live id, kind)."""
        entries: dict[tuple[str, str], dict[str, Any]] = {}
        journal = self._parts / _JOURNAL
        if not journal.exists():
            return entries
        with _io("read", journal), open(journal, "rb") as file:
            for line in file:
                try:
                    entry = _loads(line)
                    entries[(entry["liveid"], entry["kind"])] = entry
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a kill: its part was never renamed into place
        return entries

    def _committed_units(self) -> Iterator[tuple[str, str]]:
        """The units earlier runs committed, counted into the totals as they are found."""
        journal = self._journal_entries()
        for kind in self.request.kinds:
            for entry in self._kind_dir(kind).iterdir():
                if not entry.name.endswith(".jsonl"):
                    continue
                liveid = _liveid_of(entry.name, ".jsonl")
                noted = journal.get((liveid, kind))
                with _io("read", entry):
                    lines = _count_lines(entry)
                if noted is not None and noted.get("records") != lines:
                    # Lost to a power cut before it reached the disk: fetch it again.
                    with _io("remove", entry):
                        entry.unlink()
                    continue
                self._count_unit(kind, liveid, noted or {})
                yield liveid, kind

    def _count_unit(self, kind: str, liveid: str, entry: Mapping[str, Any]) -> None:
        totals = self._totals[kind]
        totals["units"] += 1
        for name in ("pages", "records", "duplicates"):
            totals[name] += int(entry.get(name) or 0)
        for issue in entry.get("issues") or ():
            self._issues.append(
                {"kind": kind, "roomid": entry.get("roomid"), "liveid": liveid, "reason": issue}
            )

    # -- the Sink protocol ------------------------------------------------------------------

    async def live(self, live: Live) -> None:
        target = self._part_path(_LIVES, live.liveid, ".json")
        with self._writing(target):
            self._save_live(target, encode_line(dict(live.wire())))

    async def write(self, batch: Batch) -> None:
        unit = batch.unit
        part = self._pending.get(unit)
        with self._writing(self._part_dirs[unit.kind]):
            if part is None:
                part = self._pending[unit] = self._open_part(unit)
            roomid, liveid = unit.live.roomid, unit.live.liveid
            lines = []
            for record in batch.records:
                if "liveid" not in record or "roomid" not in record:
                    # Tag the record with its live; never overwrite a field the vendor sent.
                    record = {**record}
                    record.setdefault("liveid", liveid)
                    record.setdefault("roomid", roomid)
                lines.append(encode_line(record))
            part.file.write(b"".join(lines))
            part.records += len(lines)

    async def unit_end(self, result: UnitResult) -> None:
        unit = result.unit
        part = self._pending.pop(unit, None)
        if not result.ok:
            if part is not None:
                self._discard(part)
            return
        final = self._part_path(unit.kind, unit.live.liveid, ".jsonl")
        with self._writing(final):
            if part is None:  # no records: an empty part still records the unit as done
                part = self._open_part(unit)
            part.file.close()
            entry = {
                "kind": unit.kind,
                "roomid": unit.live.roomid,
                "liveid": unit.live.liveid,
                "pages": result.pages,
                "records": part.records,
                "duplicates": result.duplicates,
                "issues": list(result.issues),
                "at": _now(),
            }
            assert self._journal is not None, "DirectorySink used without open()"
            # Journal first: a part under its final name always has its entry.
            self._journal.write(encode_line(entry))
            self._journal.flush()
            os.replace(part.tmp, final)
        self._count_unit(unit.kind, unit.live.liveid, entry)

    async def close(self, report: HarvestReport) -> None:
        """Assemble the final files (whatever units are committed) and write the manifest.

        The copying runs in a worker thread: it may take a while for a big harvest, and the
        event loop must stay free meanwhile (a second Ctrl-C is a signal the loop handles).
        After a write error only the manifest is attempted, and no error is raised again:
        the first one is already on its way to the caller.
        """
        self._drop_pending()
        await anyio.to_thread.run_sync(self._finish, report)

    def _finish(self, report: HarvestReport) -> None:
        if not self._failed_io:
            try:
                lives = self._lives_in_order()
                self._lives_seen = len(lives)
                if report.complete or any(self._has_parts(kind) for kind in self.request.kinds):
                    self._assemble(lives)
                del lives
                self.manifest = self._build_manifest(report)
                self._write_manifest(self.manifest)
                if self.manifest["complete"]:
                    self._remove_parts()
                return
            except OutputError:
                self._failed_io = True
                self._write_failed_manifest(report)
                raise
        self._write_failed_manifest(report)

    def _write_failed_manifest(self, report: HarvestReport) -> None:
        # Best effort: the disk that failed a moment ago may well fail again.
        with contextlib.suppress(OutputError, OSError):
            self.manifest = self._build_manifest(report, outcome="output-error")
            self._write_manifest(self.manifest)

    # -- writing units ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self, path: str | Path) -> Iterator[None]:
        try:
            with _io("write", path):
                yield
        except OutputError:
            self._failed_io = True
            raise

    def _save_live(self, target: str, line: bytes) -> None:
        seen = os.path.exists(target)  # by an earlier run
        _write_atomic(target, line, fsync=False)
        if not seen:
            self._lives_seen += 1

    def _open_part(self, unit: Unit) -> _OpenPart:
        tmp = self._part_path(unit.kind, unit.live.liveid, ".jsonl" + _TMP)
        return _OpenPart(tmp, open(tmp, "wb"))

    @staticmethod
    def _discard(part: _OpenPart) -> None:
        with contextlib.suppress(OSError):
            part.file.close()
        with contextlib.suppress(OSError):
            os.unlink(part.tmp)

    # -- closing ----------------------------------------------------------------------------

    def _has_parts(self, kind: str) -> bool:
        directory = self._kind_dir(kind)
        return directory.is_dir() and any(e.name.endswith(".jsonl") for e in directory.iterdir())

    def _lives_in_order(self) -> list[str]:
        """The id of every live seen by any run, in start-time order (then room, then id).

        Only one short string per live is held, not the lives: with 10,000 lives a tuple of
        three strings each still added 3 MB to the peak (benchmarks/).
        """
        keys: list[str] = []
        directory = self._kind_dir(_LIVES)
        if not directory.is_dir():
            return keys
        with _io("read", directory):
            for name in os.listdir(directory):
                if name.endswith(".json"):
                    with open(os.path.join(directory, name), "rb") as file:
                        live = _loads(file.read())
                    # NUL sorts before any character of a time, a room id or a file name.
                    start, room = str(live.get("start_time") or ""), str(live.get("roomid"))
                    keys.append(f"{start}\0{room}\0{name}")
        keys.sort()
        for index, key in enumerate(keys):
            keys[index] = _liveid_of(key.rpartition("\0")[2], ".json")
        return keys

    def _ordered_parts(self, kind: str, lives: list[str]) -> Iterator[str]:
        """The committed parts of ``kind``, in the order of ``lives`` (paths)."""
        directory = self._part_dirs[kind]
        found = 0
        for liveid in lives:
            path = self._part_path(kind, liveid, ".jsonl")
            if os.path.exists(path):
                found += 1
                yield path
        if found < _count_entries(directory, ".jsonl"):
            # Parts of lives no listing mentions any more still hold committed records.
            listed = set(lives)
            leftover = {
                liveid: name
                for name in os.listdir(directory)
                if name.endswith(".jsonl") and (liveid := _liveid_of(name, ".jsonl")) not in listed
            }
            for liveid in sorted(leftover):
                yield os.path.join(directory, leftover[liveid])

    def _assemble(self, lives: list[str]) -> None:
        files = self.final_files()
        target = self.path / files["lives"]
        with _io("write", target):
            tmp = target.with_name(f".{target.name}{_TMP}")
            # Each live's file is one JSON line already.
            _concatenate((self._part_path(_LIVES, lv, ".json") for lv in lives), tmp)
            os.replace(tmp, target)
        for kind in self.request.kinds:
            target = self.path / files[kind]
            with _io("write", target):
                parts = self._ordered_parts(kind, lives)
                tmp = target.with_name(f".{target.name}{_TMP}")
                if self.request.format == "parquet":
                    from .parquet import write_parquet

                    write_parquet(tmp, [Path(part) for part in parts])
                    with open(tmp, "rb+") as file:
                        os.fsync(file.fileno())
                else:
                    _concatenate(parts, tmp)
                os.replace(tmp, target)
        _fsync_dir(self.path)

    def _remove_parts(self) -> None:
        """A complete harvest needs its parts no more; they would double the disk used."""
        for directory in sorted(self._parts.glob("*"), reverse=True):
            if directory.is_dir():
                for entry in directory.iterdir():
                    with _io("remove", entry):
                        entry.unlink()
                with _io("remove", directory):
                    directory.rmdir()
            else:
                with _io("remove", directory):
                    directory.unlink()
        with _io("remove", self._parts):
            self._parts.rmdir()

    def remove_files(self) -> None:
        """Delete everything this harvest wrote (the sink must be open: the lock is held)."""
        assert self._lock_file is not None, "remove_files needs an open DirectorySink"
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._parts.exists():
            self._remove_parts()
        for name in (MANIFEST, *self.final_files().values()):
            with _io("remove", self.path / name), contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()
        self.already_complete = False
        self.skip = frozenset()
        self.manifest = None
        self._previous = None

    def _write_manifest(self, manifest: Mapping[str, Any]) -> None:
        target = self.path / MANIFEST
        text = json.dumps(manifest, ensure_ascii=False, indent=2) + "\n"
        with _io("write", target):
            _write_atomic(target, text.encode(), fsync=True)

    def _build_manifest(
        self, report: HarvestReport | None, *, outcome: str | None = None
    ) -> dict[str, Any]:
        previous = self._previous or {}
        kinds = self.request.kinds
        counts: dict[str, dict[str, Any]] = {
            kind: {"units": 0, "failed": 0, **self._totals[kind]} for kind in kinds
        }
        issues = sorted(self._issues, key=lambda i: (kinds.index(i["kind"]), i["liveid"]))
        failures = [attrs.asdict(f) for f in (report.failures if report else [])]
        for failure in report.failures if report else []:
            if failure.kind in counts:
                counts[failure.kind]["failed"] += 1
        files = self.final_files()
        for kind, counted in counts.items():
            counted["file"] = files.get(kind)
        expected = self._lives_seen * len(kinds)
        done = sum(int(c.get("units", 0)) for c in counts.values())
        runs = [dict(r) for r in previous.get("runs", [])]
        for run in runs:
            if run.get("outcome") == "running":
                run["outcome"] = "killed"  # it never wrote its closing manifest
        if report is None:
            this_run: dict[str, Any] = {"started_at": self._started_at, "outcome": "running"}
            complete = False
        else:
            complete = report.complete and outcome is None
            this_run = {
                "started_at": report.started_at.isoformat(timespec="seconds"),
                "finished_at": (report.finished_at or datetime.now(timezone.utc)).isoformat(
                    timespec="seconds"
                ),
                "outcome": outcome or _outcome(report),
                "requests": report.requests,
                "retries": report.retries,
                "rate_limited": report.rate_limited,
                "units_fetched": report.units,
                "units_skipped": len(self.skip),
            }
        runs.append(this_run)
        return {
            "tool": "cc-collect",
            "version": self.version,
            "complete": complete,
            "request": self.request.to_json(),
            "source": self.source,
            "started_at": runs[0].get("started_at"),
            "finished_at": this_run.get("finished_at"),
            "lives": self._lives_seen,
            "units": {
                "expected": expected,
                "done": done,
                "failed": sum(int(c["failed"]) for c in counts.values()),
            },
            "records": sum(int(c.get("records", 0)) for c in counts.values()),
            "kinds": counts,
            "requests": sum(int(r.get("requests") or 0) for r in runs),
            "retries": sum(int(r.get("retries") or 0) for r in runs),
            "rate_limited": sum(int(r.get("rate_limited") or 0) for r in runs),
            "failures": failures,
            "issues": issues,
            "files": files,
            "runs": runs,
        }


def remove_harvest(directory: str | os.PathLike[str], request: HarvestRequest) -> None:
    """Delete a harvest of ``request`` from ``directory`` (only the files a harvest writes).

    For starting over, as the demo does on every run. Refuses like :class:`DirectorySink`
    does when the directory holds something else.
    """
    path = Path(directory)
    if not path.exists():
        return
    with DirectorySink(path, request) as sink:
        sink.remove_files()


def _outcome(report: HarvestReport) -> str:
    if report.fatal is not None:
        return "auth-rejected"
    if report.cancelled:
        return "interrupted"
    if report.failures:
        return "failed-units"
    return "complete"


def _describe_json(request: Mapping[str, Any]) -> str:
    window = request.get("window")
    kinds = ",".join(request.get("kinds") or [])
    fmt = request.get("format")
    if window:
        what = f"window {window.get('since')} to {window.get('until')}"
        if window.get("rooms"):
            what += f" rooms {','.join(window['rooms'])}"
    else:
        what = f"{len(request.get('lives') or [])} live(s)"
    return f"{what}, kinds {kinds}, format {fmt}"


def _concatenate(parts: Iterable[str | Path], target: Path) -> None:
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as source:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def _package_version() -> str:
    from .. import __version__

    return __version__


# Kind names double as file names; make sure none of them could clash with ours.
assert not {_LIVES, _PARTS, _LOCK, MANIFEST} & set(KINDS)
