"""The directory sink: a harvest written to files, one atomic commit per unit, resumable.

What a reader finds in an output directory::

    DIR/lives.jsonl          one line per live harvested (its /collect/live/record item)
    DIR/<kind>.jsonl         one line per record, vendor fields as received + liveid/roomid
    DIR/<kind>.parquet       the same rows, with ``format="parquet"``
    DIR/manifest.json        what was asked, what was fetched, what failed; ``complete``

How a run killed at any moment leaves only whole units, and how a rerun finishes the rest
with every record once, is the crash-safety protocol described in
:mod:`cc_collect_async.harvest.journal` (the ``.parts`` directory); the manifest is
:mod:`cc_collect_async.harvest.manifest`.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import anyio

from ..json_codec import loads
from .events import Batch, UnitResult
from .filesystem import (
    TMP,
    DirectoryLock,
    OutputError,
    output_errors,
    remove_quietly,
    replace_atomically,
    temporary_path,
)
from .journal import PARTS, Journal, PendingUnit, UnitRanges
from .jsonl import NotARecordError, read_jsonl, record_lines
from .manifest import (
    MANIFEST,
    NotAHarvestDirectoryError,
    Tally,
    build_manifest,
    final_files,
    load_manifest,
    read_manifest,
    write_manifest,
)
from .plan import Live, Unit
from .report import HarvestReport
from .request import HarvestRequest

__all__ = ["DirectorySink", "read_records", "remove_harvest"]


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


class DirectorySink:
    """A :class:`~cc_collect_async.harvest.Sink` that writes a harvest into a directory.

    Use it as a context manager around the harvest: entering takes the directory's lock,
    checks that the directory is empty or holds a harvest of the same ``request``, and reads
    which units an earlier run committed (:attr:`skip`, for ``Harvester(skip=...)``). When
    :attr:`already_complete` is true there is nothing to do and nothing has been written.
    ``close`` (called by ``Harvester.run``) assembles the final files and the manifest;
    :attr:`manifest` then holds what was written.

    A batch holding an item that is not a JSON object is not written: its unit is not
    committed and the manifest lists it as failed (a rerun asks for it again).

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
        self._lock = DirectoryLock(self.path)
        self._journal = Journal(self.path / PARTS, request.kinds)
        self._pending: dict[Unit, PendingUnit] = {}
        #: Units whose batches held something that cannot be a row: never committed.
        self._rejected: dict[Unit, str] = {}
        #: The output error that stopped this run, if one did.
        self._failure: str | None = None
        self._started_at = datetime.now(timezone.utc)
        self._tally = Tally(request.kinds)
        #: Ids of the lives earlier runs saw; this run's are counted as they come (the
        #: harvest announces each live once), not kept: memory stays flat with the lives.
        self._lives_before: set[str] = set()

    def __repr__(self) -> str:
        return f"DirectorySink({str(self.path)!r}, {self.request.describe()!r})"

    def final_files(self) -> dict[str, str]:
        """The file each kind (and the lives) ends up in, relative to the directory."""
        return final_files(self.request)

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
        """Lock the directory, check it, recover committed units, write a first manifest."""
        path = self.path
        if path.exists() and not path.is_dir():
            raise OutputError(f"cannot use {path} as the output directory: it is a file")
        with output_errors("create the output directory", path):
            path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except OutputError:
            finished = self._finished_read_only()
            if finished is None:
                raise
            self.already_complete, self.manifest = True, finished
            return
        try:
            self._previous = load_manifest(path, self.request, self.source)
            if self._previous is None:
                self._check_foreign()
            elif self._previous.get("complete") is True:
                self.already_complete = True
                self.manifest = self._previous
                # Killed after the manifest said complete, before the parts were removed.
                self._journal.remove()
                return
            self._remove_temporaries()
            committed, self._lives_before = self._journal.open()
            for entry in committed:
                self._tally.count_unit(entry)
            self._tally.lives = len(self._lives_before)
            self.skip = frozenset((e["liveid"], e["kind"]) for e in committed)
            self.manifest = self._build_manifest(None)
            write_manifest(path, self.manifest)
        except BaseException:
            self.release()
            raise

    def _finished_read_only(self) -> dict[str, Any] | None:
        """The manifest of a complete harvest in a directory nobody may write to (archived
        read-only, say): a rerun has nothing to do there, and no lock is needed to say so."""
        if os.access(self.path, os.W_OK):
            return None
        manifest = load_manifest(self.path, self.request, self.source)
        return manifest if manifest is not None and manifest.get("complete") is True else None

    def _check_foreign(self) -> None:
        ours = {PARTS, DirectoryLock.NAME, MANIFEST, *self.final_files().values()}
        foreign = sorted(
            entry.name
            for entry in self.path.iterdir()
            if entry.name not in ours and not entry.name.endswith(TMP)
        )
        if foreign:
            raise NotAHarvestDirectoryError(
                f"{self.path} is not empty and holds no cc-collect harvest "
                f"(found {', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
                "choose an empty or new --out"
            )

    def _remove_temporaries(self) -> None:
        """Remove final files a killed run was assembling (never a whole final file)."""
        for name in (MANIFEST, *self.final_files().values()):
            remove_quietly(temporary_path(self.path / name))

    def _drop_pending(self) -> None:
        """Discard the units that never ended, and close the journal."""
        for pending in self._pending.values():
            pending.discard()
        self._pending.clear()
        self._journal.close()

    def release(self) -> None:
        """Close the journal and drop the lock (the lock file stays: deleting it would race)."""
        self._drop_pending()
        self._lock.release()

    # -- the Sink protocol ------------------------------------------------------------------

    async def live(self, live: Live) -> None:
        with self._writing(self.path / PARTS):
            self._journal.save_live(live.wire())
        if live.liveid not in self._lives_before:
            self._tally.lives += 1

    async def write(self, batch: Batch) -> None:
        unit = batch.unit
        if unit in self._rejected:
            return
        try:
            lines, count = record_lines(batch.records, unit.live)
        except NotARecordError as exc:
            self._rejected[unit] = f"page {batch.page}: {exc}; not written"
            pending = self._pending.pop(unit, None)
            if pending is not None:
                pending.discard()
            return
        pending = self._pending.get(unit)
        if pending is None:
            pending = self._pending[unit] = self._journal.begin(unit)
        with self._writing(self.path / PARTS):
            pending.add(lines, count)

    async def unit_end(self, result: UnitResult) -> None:
        unit = result.unit
        pending = self._pending.pop(unit, None)
        if not result.ok:
            self._rejected.pop(unit, None)  # the harvest's own failure lists it
        if not result.ok or unit in self._rejected:
            if pending is not None:
                pending.discard()
            return
        if pending is None:  # no records: the journal still records the unit as done
            pending = self._journal.begin(unit)
        with self._writing(self.path / PARTS):
            entry = self._journal.commit(
                unit,
                pending,
                pages=result.pages,
                duplicates=result.duplicates,
                issues=result.issues,
            )
        self._tally.count_unit(entry)

    @contextlib.contextmanager
    def _writing(self, path: str | os.PathLike[str]) -> Iterator[None]:
        """Writes that, once one has failed, leave only the manifest to be written."""
        if self._failure is not None:
            raise OutputError(f"cannot write {self.path}: {self._failure}")
        try:
            with output_errors("write", path):
                yield
        except OutputError as exc:
            self._failure = str(exc)
            raise

    async def close(self, report: HarvestReport) -> None:
        """Assemble the final files (whatever units are committed) and write the manifest.

        The copying runs in a worker thread: it may take a while for a big harvest, and the
        event loop must stay free meanwhile (a second Ctrl-C is a signal the loop handles).
        After a write error only the manifest is attempted, with the error in it, and no
        error is raised again: the first one is already on its way to the caller.
        """
        self._drop_pending()
        await anyio.to_thread.run_sync(self._finish, report)

    def _finish(self, report: HarvestReport) -> None:
        if self._failure is None:
            try:
                if report.complete or self._tally.units:
                    self._assemble()
                self.manifest = self._build_manifest(report)
                write_manifest(self.path, self.manifest)
                if self.manifest["complete"]:
                    self._journal.remove()
                return
            except OutputError as exc:
                self._failure = str(exc)
                self._write_failed_manifest(report)
                raise
        self._write_failed_manifest(report)

    def _write_failed_manifest(self, report: HarvestReport) -> None:
        # Best effort: the disk that failed a moment ago may well fail again.
        with contextlib.suppress(OutputError):
            self.manifest = self._build_manifest(report, error=self._failure)
            write_manifest(self.path, self.manifest)

    # -- closing ----------------------------------------------------------------------------

    def _assemble(self) -> None:
        files = self.final_files()
        self._lives_before.clear()  # counted already; the memory is the assembly's now
        order = self._journal.lives_in_order()
        self._assembled(files["lives"], functools.partial(self._journal.copy_lives, order))
        positions = order.positions()
        del order
        for kind in self.request.kinds:
            ranges = self._journal.unit_ranges(kind, positions)
            if self.request.format == "parquet":
                fill = functools.partial(self._write_parquet, kind, ranges)
            else:
                fill = functools.partial(self._journal.copy_kind, kind, ranges)
            self._assembled(files[kind], fill)

    def _assembled(self, name: str, fill: Callable[[IO[bytes]], object]) -> None:
        # A failure removes the temporary: the manifest then has room, and no half-written
        # file is left behind.
        target = self.path / name
        with output_errors("write", target):
            replace_atomically(target, fill, fsync=True)

    def _write_parquet(self, kind: str, ranges: UnitRanges, out: IO[bytes]) -> None:
        from .parquet import write_parquet

        def records() -> Iterator[dict[str, Any]]:
            for line in self._journal.kind_lines(kind, ranges):
                yield loads(line)

        write_parquet(out, records)

    def remove_files(self) -> None:
        """Delete everything this harvest wrote (the sink must be open: the lock is held)."""
        if not self._lock.held:
            raise RuntimeError("remove_files needs an open DirectorySink")
        self._journal.remove()
        for name in (MANIFEST, *self.final_files().values()):
            path = self.path / name
            if path.exists():
                with output_errors("remove", path):
                    path.unlink()
        self.already_complete = False
        self.skip = frozenset()
        self.manifest = None
        self._previous = None

    def _build_manifest(
        self, report: HarvestReport | None, *, error: str | None = None
    ) -> dict[str, Any]:
        rejected = [
            {"kind": u.kind, "roomid": u.live.roomid, "liveid": u.live.liveid, "reason": why}
            for u, why in self._rejected.items()
        ]
        return build_manifest(
            self.request,
            self._tally,
            report,
            previous=self._previous,
            source=self.source,
            version=self.version,
            started_at=self._started_at,
            skipped=len(self.skip),
            rejected=rejected,
            error=error,
        )


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


def _package_version() -> str:
    from .. import __version__

    return __version__
