"""Replay: re-queue an export (split it again), every export of a date range, one item, the
items with a given outcome (e.g. unmapped after a mapping fix), or the whole poison queue.

Safe by construction: item blob names and outcome rows are deterministic and the ledger turns
re-imports into duplicates, so replaying anything any number of times changes nothing that was
already right. Every operation has a dry run that only counts.

The HTTP function is reachable by any function-key holder, so its requests are checked and
capped here (ReplayRequest) and, except for one item, run as a job from the replay queue rather
than inside the request (which Azure cuts at 230 s).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from shared.blob_names import MAX_BLOB_NAME_CHARS, check_blob_name
from shared.clients import Runtime
from shared.export_format import parse_export_name
from shared.messages import ItemMessage, item_blob_name
from shared.outcomes import ItemOutcome, Outcome
from shared.telemetry import event, redact

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]  # done, total, what


def _quiet(done: int, total: int, what: str) -> None:
    return None


MAX_BODY_BYTES = 32 * 1024  # a job's queue message, base64-encoded, stays under 64 KB
MAX_DAYS = 31
MAX_NAMES = 100
MAX_NAME_CHARS = MAX_BLOB_NAME_CHARS
# Outcomes worth replaying. Imported and duplicate items are already in their mailboxes: replaying
# them would re-check every one against Graph and change nothing.
REPLAYABLE = (Outcome.UNMAPPED, Outcome.FAILED, Outcome.QUARANTINED, Outcome.OVERSIZE,
              Outcome.QUEUED)
_FIELDS = {"export": {"exports"}, "days": {"from", "to"}, "item": {"export", "member"},
           "outcomes": {"outcomes", "exports"}, "poison": set(), "job": {"job"}}


@dataclass(frozen=True)
class ReplayRequest:
    """A replay asked for over HTTP, checked: known kind and fields, at most MAX_DAYS days and
    MAX_NAMES names, replayable outcomes only. Raises ValueError saying what is wrong."""

    kind: str
    dry_run: bool = False
    exports: tuple[str, ...] = ()
    first: date | None = None
    last: date | None = None
    member: str = ""
    outcomes: frozenset[Outcome] = frozenset()
    job: str = ""

    @classmethod
    def from_json(cls, body: Any) -> ReplayRequest:
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        kind = body.get("kind")
        if kind not in _FIELDS:
            raise ValueError(f"unknown kind {kind!r}")
        unknown = set(body) - _FIELDS[kind] - {"kind", "dry_run"}
        if unknown:
            raise ValueError(f"unknown field(s) for {kind}: {', '.join(sorted(unknown))}")
        dry_run = body.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise ValueError("dry_run must be true or false")
        if kind == "export":
            return cls(kind, dry_run, exports=_names(body["exports"], "exports"))
        if kind == "days":
            first, last = date.fromisoformat(body["from"]), date.fromisoformat(body["to"])
            if not 0 <= (last - first).days < MAX_DAYS:
                raise ValueError(f"from..to must be 1 to {MAX_DAYS} days, from first to last")
            return cls(kind, dry_run, first=first, last=last)
        if kind == "item":
            export, member = _name(body["export"]), _name(body["member"])
            check_blob_name(item_blob_name(export, member))
            return cls(kind, dry_run, exports=(export,), member=member)
        if kind == "outcomes":
            wanted = body["outcomes"]
            if not isinstance(wanted, list) or not wanted or len(wanted) > len(Outcome):
                raise ValueError("outcomes must be a non-empty list of outcomes")
            outcomes = frozenset(Outcome(o) for o in wanted)
            refused = outcomes - set(REPLAYABLE)
            if refused:
                raise ValueError(f"{', '.join(sorted(refused))} items are not replayed (they "
                                 f"are in their mailboxes already); replayable: "
                                 f"{', '.join(REPLAYABLE)}")
            exports = body.get("exports")
            return cls(kind, dry_run, outcomes=outcomes,
                       exports=_names(exports, "exports") if exports is not None else ())
        if kind == "job":
            return cls(kind, job=str(uuid.UUID(str(body["job"]))))
        return cls(kind, dry_run)

    def to_json(self) -> dict[str, Any]:
        """The request in the HTTP form again (what a job's queue message carries)."""
        out: dict[str, Any] = {"kind": self.kind, "dry_run": self.dry_run}
        if self.kind == "export":
            out["exports"] = list(self.exports)
        elif self.kind == "days" and self.first and self.last:
            out["from"], out["to"] = self.first.isoformat(), self.last.isoformat()
        elif self.kind == "item":
            out["export"], out["member"] = self.exports[0], self.member
        elif self.kind == "outcomes":
            out["outcomes"] = sorted(self.outcomes)
            if self.exports:
                out["exports"] = list(self.exports)
        return out

    def run(self, replayer: Replayer) -> ReplayResult:
        if self.kind == "export":
            return replayer.exports(self.exports, self.dry_run)
        if self.kind == "days" and self.first and self.last:
            return replayer.days(self.first, self.last, self.dry_run)
        if self.kind == "item":
            return replayer.item(self.exports[0], self.member, self.dry_run)
        if self.kind == "outcomes":
            return replayer.outcomes(set(self.outcomes), self.exports or None, self.dry_run)
        if self.kind == "poison":
            return replayer.poison(self.dry_run)
        raise ValueError(f"{self.kind} is not a replay")


def _names(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_NAMES:
        raise ValueError(f"{what} must be a list of 1 to {MAX_NAMES} names")
    return tuple(_name(v) for v in value)


def _name(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_CHARS:
        raise ValueError(f"a name must be a string of 1 to {MAX_NAME_CHARS} characters")
    return check_blob_name(value)  # no "..", ".", empty segments or control characters


@dataclass
class ReplayResult:
    kind: str
    dry_run: bool
    exports: list[str] = field(default_factory=list)
    items: int = 0
    missing: list[str] = field(default_factory=list)  # asked for but not found

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "dry_run": self.dry_run, "exports": self.exports,
                "items": self.items, "missing": self.missing}


class Replayer:
    def __init__(self, rt: Runtime, progress: Progress = _quiet) -> None:
        self._rt = rt
        self._progress = progress
        self._exports = rt.blob_service.get_container_client(rt.settings.exports_container)
        self._items = rt.blob_service.get_container_client(rt.settings.items_container)

    def exports(self, names: Iterable[str], dry_run: bool = False) -> ReplayResult:
        """Split these export blobs again, as a new BlobCreated event would."""
        result = ReplayResult("export", dry_run)
        names = [check_blob_name(name) for name in names]  # raises before any work
        for index, name in enumerate(names, start=1):
            blob = self._exports.get_blob_client(name)
            if not blob.exists():
                result.missing.append(name)
                continue
            result.exports.append(name)
            if dry_run:
                record = self._rt.state.export(name)
                result.items += record.members if record else 0
            else:
                result.items += self._rt.splitter().split(name, blob).queued
            self._progress(index, len(names), name)
        self._log(result)
        return result

    def days(self, first: date, last: date, dry_run: bool = False) -> ReplayResult:
        """Every export whose TeleMessage name dates it within [first, last]; exports with
        other names (SFTP, uploads) by their blob's creation date."""
        chosen = []
        for blob in self._exports.list_blobs():
            day = parse_export_name(blob.name).day or blob.creation_time.date()
            if first <= day <= last:
                chosen.append(blob.name)
        result = self.exports(sorted(chosen), dry_run)
        result.kind = "days"
        return result

    def item(self, export: str, member: str, dry_run: bool = False) -> ReplayResult:
        result = ReplayResult("item", dry_run)
        check_blob_name(item_blob_name(check_blob_name(export), member))
        self._queue_items(export, [member], dry_run, result)  # lists it as missing if it is
        self._log(result)
        return result

    def outcomes(self, wanted: set[Outcome], exports: Iterable[str] | None = None,
                 dry_run: bool = False) -> ReplayResult:
        """Re-queue the items whose recorded outcome is one of `wanted` (e.g. unmapped after
        the mapping CSV was fixed, or failed after an outage)."""
        result = ReplayResult("outcomes", dry_run)
        names = [check_blob_name(e) for e in exports] if exports is not None else [r.name for r in
                                                           self._rt.state.exports()]
        for index, name in enumerate(names, start=1):
            members = [o.member for o in self._rt.outcomes.for_export(name)
                       if o.outcome in wanted]
            if members:
                result.exports.append(name)
                self._queue_items(name, members, dry_run, result)
            self._progress(index, len(names), name)
        self._log(result)
        return result

    def poison(self, dry_run: bool = False) -> ReplayResult:
        """Move every message of `<items>-poison` back onto the items queue."""
        result = ReplayResult("poison", dry_run)
        if dry_run:
            result.items = self._rt.queue_depths()["poison"]
            return result
        poison = self._rt.queue(f"{self._rt.settings.items_queue}-poison")
        while True:
            batch = list(poison.receive_messages(max_messages=32, messages_per_page=32,
                                                 visibility_timeout=300))
            if not batch:
                break
            for message in batch:
                self._rt.items_queue.send_message(message.content)
                poison.delete_message(message)
                result.items += 1
            self._progress(result.items, 0, "poison")
        self._log(result)
        return result

    def _queue_items(self, export: str, members: list[str], dry_run: bool,
                     result: ReplayResult) -> int:
        queued = 0
        for member in members:
            blob = self._items.get_blob_client(item_blob_name(export, member))
            if not blob.exists():
                result.missing.append(f"{export}/{member}")
                continue
            if not dry_run:
                size = int(blob.get_blob_properties().size)
                self._rt.outcomes.record(ItemOutcome(export, member, Outcome.QUEUED, size=size))
                self._rt.items_queue.send_message(ItemMessage(
                    export=export, member=member, blob=blob.blob_name, size=size).to_json())
            queued += 1
        result.items += queued
        return queued

    def _log(self, result: ReplayResult) -> None:
        event(log, "replay", kind=result.kind, dry_run=result.dry_run,
              exports=len(result.exports), items=result.items, missing=len(result.missing))


def _job_row(job: str) -> str:
    return f"replay-{job}"


def submit_job(rt: Runtime, request: ReplayRequest) -> dict[str, Any]:
    """Queues the request for `run_job` and records it; returns the job's record."""
    job = str(uuid.uuid4())
    record = {"job": job, "status": "queued", "request": request.to_json()}
    rt.state.record_run(_job_row(job), record)
    rt.queue(rt.settings.replay_queue).send_message(
        json.dumps({"job": job, "request": request.to_json()}))
    event(log, "replay queued", kind=request.kind, job=job)
    return record


def job_state(rt: Runtime, job: str) -> dict[str, Any] | None:
    return rt.state.last_run(_job_row(job))


def run_job(rt: Runtime, body: str, last_attempt: bool) -> ReplayResult:
    """One message of the replay queue. Raises to have it retried; its last failure is
    recorded on the job, which then sits in the replay queue's poison queue."""
    message = json.loads(body)
    job = str(uuid.UUID(str(message["job"])))
    asked = message.get("request")
    try:
        request = ReplayRequest.from_json(asked)
        rt.state.record_run(_job_row(job), {"job": job, "status": "running", "request": asked})
        result = request.run(Replayer(rt))
    except Exception as exc:
        if last_attempt:
            rt.state.record_run(_job_row(job), {
                "job": job, "status": "failed", "request": asked,
                "error": redact(f"{type(exc).__name__}: {exc}")[:500]})
        raise
    rt.state.record_run(_job_row(job), {"job": job, "status": "done", "request": asked,
                                        "result": result.to_json()})
    return result
