"""Replay: re-queue an export (split it again), every export of a date range, one item, the
items with a given outcome (e.g. unmapped after a mapping fix), or the whole poison queue.

Safe by construction: item blob names and outcome rows are deterministic and the ledger turns
re-imports into duplicates, so replaying anything any number of times changes nothing that was
already right. Every operation has a dry run that only counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

from shared.blob_names import check_blob_name
from shared.clients import Runtime
from shared.export_format import parse_export_name
from shared.messages import ItemMessage, item_blob_name
from shared.outcomes import ItemOutcome, Outcome
from shared.telemetry import event

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]  # done, total, what


def _quiet(done: int, total: int, what: str) -> None:
    return None


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
        if not self._queue_items(export, [member], dry_run, result):
            result.missing.append(f"{export}/{member}")
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
