"""``manifest.json``: what a harvest directory holds, what was asked, fetched and failed.

It is written before the first request (``complete: false``, this run ``running``) and
again when the run ends; every run appends itself to ``runs``. A directory's manifest is
also how a rerun knows the directory is a harvest of the same request
(:func:`load_manifest`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs

from ..json_codec import dumps, loads
from .filesystem import os_error, output_errors, write_atomic
from .report import HarvestReport
from .request import HarvestRequest

__all__ = [
    "MANIFEST",
    "DifferentHarvestError",
    "NotAHarvestDirectoryError",
    "Tally",
    "build_manifest",
    "final_files",
    "load_manifest",
    "read_manifest",
    "write_manifest",
]

MANIFEST = "manifest.json"


class DifferentHarvestError(Exception):
    """The directory holds a harvest of a different request (window, lives, kinds, format)."""


class NotAHarvestDirectoryError(Exception):
    """The directory is not empty and holds no harvest: refusing to write files into it."""


def final_files(request: HarvestRequest) -> dict[str, str]:
    """The file each kind (and the lives) ends up in, relative to the directory."""
    ext = "parquet" if request.format == "parquet" else "jsonl"
    return {"lives": "lives.jsonl", **{k: f"{k}.{ext}" for k in request.kinds}}


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``manifest.json`` of a harvest directory."""
    manifest: dict[str, Any] = loads(Path(directory, MANIFEST).read_bytes())
    return manifest


def load_manifest(
    directory: Path, request: HarvestRequest, source: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """The manifest of ``directory``, None when there is none.

    Raises :class:`NotAHarvestDirectoryError` when it is not a manifest of ours and
    :class:`DifferentHarvestError` when it records another request, or another ``source``
    (account or server) than the one given.
    """
    path = directory / MANIFEST
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise os_error("read", path, exc) from exc
    try:
        manifest = loads(data)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("request"), dict):
            raise ValueError("no request")
        found = HarvestRequest.from_json(manifest["request"])
    except ValueError:
        raise NotAHarvestDirectoryError(
            f"{path} is not a cc-collect manifest this version can read; choose another --out"
        ) from None
    if not found.same_harvest(request):
        raise DifferentHarvestError(
            f"{directory} holds a different harvest ({found.describe()}); "
            "choose another --out or remove it"
        )
    recorded = manifest.get("source")
    if source and isinstance(recorded, dict) and _other_source(recorded, source):
        raise DifferentHarvestError(
            f"{directory} holds a harvest of account {recorded.get('userid')} from "
            f"{recorded.get('base_url')}; choose another --out or remove it"
        )
    return manifest


def _other_source(recorded: Mapping[str, Any], source: Mapping[str, str]) -> bool:
    """Whether a directory's records came from another account or server than a run's:
    resumed, its files would hold both, and its manifest would call them complete."""
    for field in ("userid", "base_url"):
        theirs, ours = recorded.get(field), source.get(field)
        if theirs and ours and str(theirs).rstrip("/") != ours.rstrip("/"):
            return True
    return False


def write_manifest(directory: Path, manifest: Mapping[str, Any]) -> None:
    target = directory / MANIFEST
    with output_errors("write", target):
        write_atomic(target, dumps(manifest, indent=True) + b"\n", fsync=True)


def _counts() -> dict[str, int]:
    return {"units": 0, "pages": 0, "records": 0, "duplicates": 0}


@attrs.define
class Tally:
    """What the committed units hold, per kind, kept up to date as units commit, so the
    manifest never needs the whole journal (memory stays flat)."""

    kinds: tuple[str, ...]
    counts: dict[str, dict[str, int]] = attrs.field(init=False)
    issues: list[dict[str, Any]] = attrs.field(factory=list)
    #: Distinct lives seen by any run.
    lives: int = 0

    def __attrs_post_init__(self) -> None:
        self.counts = {kind: _counts() for kind in self.kinds}

    def count_unit(self, entry: Mapping[str, Any]) -> None:
        """Count a journal entry: a unit committed by this run or an earlier one."""
        kind, liveid = entry["kind"], entry["liveid"]
        totals = self.counts[kind]
        totals["units"] += 1
        for name in ("pages", "records", "duplicates"):
            totals[name] += int(entry.get(name) or 0)
        for issue in entry.get("issues") or ():
            self.issues.append(
                {"kind": kind, "roomid": entry.get("roomid"), "liveid": liveid, "reason": issue}
            )

    @property
    def units(self) -> int:
        return sum(c["units"] for c in self.counts.values())


def _outcome(report: HarvestReport) -> str:
    if report.fatal is not None:
        return "auth-rejected"
    if report.cancelled:
        return "interrupted"
    if report.failures:
        return "failed-units"
    return "complete"


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def build_manifest(
    request: HarvestRequest,
    tally: Tally,
    report: HarvestReport | None,
    *,
    previous: Mapping[str, Any] | None,
    source: Mapping[str, str],
    version: str,
    started_at: datetime,
    skipped: int,
    rejected: Sequence[Mapping[str, Any]] = (),
    error: str | None = None,
) -> dict[str, Any]:
    """The manifest of a run: ``report`` None while it is running; ``error`` the output
    error that stopped it; ``rejected`` units the sink refused to commit (failures too)."""
    kinds = request.kinds
    counts: dict[str, dict[str, Any]] = {
        kind: {"units": 0, "failed": 0, **tally.counts[kind]} for kind in kinds
    }
    issues = sorted(tally.issues, key=lambda i: (kinds.index(i["kind"]), i["liveid"]))
    failures = [attrs.asdict(f) for f in (report.failures if report else [])]
    failures += [dict(f) for f in rejected]
    for failure in failures:
        if failure["kind"] in counts:
            counts[failure["kind"]]["failed"] += 1
    files = final_files(request)
    for kind, counted in counts.items():
        counted["file"] = files.get(kind)
    runs = [dict(r) for r in (previous or {}).get("runs", [])]
    for run in runs:
        if run.get("outcome") == "running":
            run["outcome"] = "killed"  # it never wrote its closing manifest
    if report is None:
        this_run: dict[str, Any] = {"started_at": _iso(started_at), "outcome": "running"}
        complete = listed = False
    else:
        complete = report.complete and error is None and not rejected
        listed = report.listing_complete
        this_run = {
            "started_at": _iso(report.started_at),
            "finished_at": _iso(report.finished_at or datetime.now(timezone.utc)),
            "outcome": "output-error" if error is not None else _outcome(report),
            "requests": report.requests,
            "retries": report.retries,
            "rate_limited": report.rate_limited,
            "units_fetched": report.units,
            "units_skipped": skipped,
        }
        if error is not None:
            this_run["error"] = error
    runs.append(this_run)
    return {
        "tool": "cc-collect",
        "version": version,
        "complete": complete,
        "request": request.to_json(),
        "source": dict(source),
        "started_at": runs[0].get("started_at"),
        "finished_at": this_run.get("finished_at"),
        "lives": tally.lives,
        "units": {
            # The listing runs ahead of the lives the sink has seen: a run stopped after
            # the listing's end knew more lives than it had handed on.
            "expected": max(tally.lives, report.lives if report else 0) * len(kinds),
            # Until the listing has walked to its end, more lives (and units) may exist.
            "expected_is": "exact" if listed else "partial",
            "done": tally.units,
            "failed": sum(int(c["failed"]) for c in counts.values()),
        },
        "records": sum(c["records"] for c in tally.counts.values()),
        "kinds": counts,
        "requests": sum(int(r.get("requests") or 0) for r in runs),
        "retries": sum(int(r.get("retries") or 0) for r in runs),
        "rate_limited": sum(int(r.get("rate_limited") or 0) for r in runs),
        "failures": failures,
        "issues": issues,
        "files": files,
        "runs": runs,
    }
