"""Split: one export ZIP in blob storage -> one item blob and one queue message per EML.

The ZIP is read through ranged reads (memory stays flat), members are checked before they are
extracted, every member ends with a recorded outcome (queued or quarantined), and the export's
manifest problems are recorded for its report. Splitting the same export again is harmless:
item blob names and outcome rows are deterministic and import is idempotent.
"""

from __future__ import annotations

import logging
import zipfile
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from azure.storage.blob import BlobClient, ContainerClient
from azure.storage.queue import QueueClient

from shared.blob_names import blob_name_problem
from shared.blob_reader import BlobRangeReader
from shared.export_format import (
    DEFAULT_LIMITS,
    ExportRefused,
    Limits,
    Member,
    check_export,
    open_export,
    parse_export_name,
    read_member,
)
from shared.messages import ItemMessage, item_blob_name
from shared.outcomes import ItemOutcome, Outcome, OutcomeStore
from shared.state import ExportRecord, StateStore
from shared.telemetry import begin_item_trace

log = logging.getLogger(__name__)

STREAM_THRESHOLD = 8 * 1024 * 1024  # members above this are streamed to their blob
CHUNK_BYTES = 32 * 1024 * 1024
CHUNK_MEMBERS = 100


@dataclass(frozen=True)
class SplitResult:
    export: str
    queued: int
    quarantined: int
    problems: int
    error: str = ""


@dataclass
class _Extracted:
    member: Member
    data: bytes | None  # None when already uploaded (streamed)


class Splitter:
    def __init__(self, items: ContainerClient, queue: QueueClient, outcomes: OutcomeStore,
                 state: StateStore, limits: Limits = DEFAULT_LIMITS, workers: int = 16) -> None:
        self._items = items
        self._queue = queue
        self._outcomes = outcomes
        self._state = state
        self._limits = limits
        self._workers = workers

    def split(self, export: str, blob: BlobClient) -> SplitResult:
        name_info = parse_export_name(export)
        day = name_info.day.isoformat() if name_info.day else None
        try:
            zf = open_export(BlobRangeReader(blob), self._limits)
        except ExportRefused as refused:
            return self._refuse(export, day, refused.reason, refused.detail)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            return self._refuse(export, day, "corrupt_zip",
                                f"the export is not a readable ZIP: {exc}")
        with zf:
            check = check_export(zf, self._limits)
            members = [_refuse_unsafe_name(export, m) for m in check.members]
            quarantined = [ItemOutcome(export, m.name, Outcome.QUARANTINED,
                                       reason=m.rejected or "", detail=m.detail, size=m.size)
                           for m in members if m.rejected]
            self._outcomes.record_many(quarantined)
            queued, failed = self._extract_all(export, zf,
                                               [m for m in members if m.rejected is None])
        self._outcomes.record_many(failed)
        record = ExportRecord(
            name=export, day=day,
            manifest_count=check.manifest.count if check.manifest else None,
            members=len(check.members), queued=queued, rejected=len(quarantined) + len(failed),
            problems=[asdict(p) | {"names": list(p.names[:1000])} for p in check.problems],
            split_at=_now())
        self._state.record_export(record)
        log.info("export split", extra={"export": export, "queued": queued,
                                        "quarantined": record.rejected,
                                        "problems": len(check.problems)})
        return SplitResult(export, queued, record.rejected, len(check.problems))

    def _refuse(self, export: str, day: str | None, reason: str, detail: str) -> SplitResult:
        log.error("export refused", extra={"export": export, "reason": reason})
        self._state.record_export(ExportRecord(
            name=export, day=day, manifest_count=None, members=0, queued=0, rejected=0,
            error=f"{reason}: {detail}", split_at=_now()))
        return SplitResult(export, 0, 0, 0, error=reason)

    def _extract_all(self, export: str, zf: zipfile.ZipFile,
                     members: list[Member]) -> tuple[int, list[ItemOutcome]]:
        """Reads members in order (one reader over the ZIP) while a thread pool uploads and
        enqueues them; in-flight work is bounded by count and bytes, so memory stays flat."""
        failed: list[ItemOutcome] = []
        batch: list[_Extracted] = []
        batch_bytes = 0
        with ThreadPoolExecutor(self._workers, thread_name_prefix="split") as pool:
            inflight = _InFlight(max_items=self._workers * 4, max_bytes=CHUNK_BYTES)
            for member in members:
                try:
                    extracted = self._extract(export, zf, member)
                except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError,
                        NotImplementedError) as exc:
                    failed.append(ItemOutcome(export, member.name, Outcome.QUARANTINED,
                                              reason="corrupt_member", detail=str(exc)[:500],
                                              size=member.size))
                    continue
                batch.append(extracted)
                batch_bytes += len(extracted.data or b"")
                if len(batch) >= CHUNK_MEMBERS or batch_bytes >= CHUNK_BYTES // 4:
                    self._dispatch(export, batch, pool, inflight)
                    batch, batch_bytes = [], 0
            self._dispatch(export, batch, pool, inflight)
            queued = inflight.drain()
        return queued, failed

    def _extract(self, export: str, zf: zipfile.ZipFile, member: Member) -> _Extracted:
        limit = min(member.size, self._limits.max_member_bytes)
        if member.size <= STREAM_THRESHOLD:
            return _Extracted(member, b"".join(read_member(zf, member, limit)))
        self._items.upload_blob(item_blob_name(export, member.name),
                                _IterStream(read_member(zf, member, limit)),  # type: ignore[arg-type]
                                length=member.size,
                                overwrite=True, max_concurrency=1)
        return _Extracted(member, None)

    def _dispatch(self, export: str, batch: list[_Extracted], pool: ThreadPoolExecutor,
                  inflight: _InFlight) -> None:
        if not batch:
            return
        # The outcome rows go in (one transaction per 100) before any message of theirs is
        # sent, so an import never races ahead of its row.
        self._outcomes.record_many(ItemOutcome(export, e.member.name, Outcome.QUEUED,
                                               size=e.member.size) for e in batch)
        for extracted in batch:
            inflight.add(pool.submit(self._deliver, export, extracted),
                         len(extracted.data or b""))

    def _deliver(self, export: str, extracted: _Extracted) -> None:
        """Claim check: the item's bytes to its blob, then the message that points at them."""
        name = item_blob_name(export, extracted.member.name)
        if extracted.data is not None:
            self._items.upload_blob(name, extracted.data, overwrite=True)
        self._queue.send_message(ItemMessage(
            export=export, member=extracted.member.name, blob=name, size=extracted.member.size,
            trace=begin_item_trace(export, extracted.member.name)).to_json())


class _InFlight:
    """Futures not yet finished, bounded by count and by the bytes they hold."""

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self._futures: deque[tuple[Future[None], int]] = deque()
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._bytes = 0
        self.done = 0

    def add(self, future: Future[None], size: int) -> None:
        self._futures.append((future, size))
        self._bytes += size
        while self._futures and (len(self._futures) > self._max_items
                                 or self._bytes > self._max_bytes):
            self._finish_oldest()

    def drain(self) -> int:
        while self._futures:
            self._finish_oldest()
        return self.done

    def _finish_oldest(self) -> None:
        future, size = self._futures.popleft()
        future.result()  # a failed upload or send fails the split; Event Grid retries it
        self._bytes -= size
        self.done += 1


class _IterStream:
    """A file-like view of an iterator of byte chunks, for streamed blob uploads."""

    def __init__(self, chunks: object) -> None:
        self._chunks = iter(chunks)  # type: ignore[call-overload]
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def _refuse_unsafe_name(export: str, member: Member) -> Member:
    """A member whose item blob name or queue message would be refused by Azure is refused
    here, by reason, instead of failing the whole split when its upload or send fails."""
    if member.rejected:
        return member
    blob = item_blob_name(export, member.name)
    problem = blob_name_problem(blob)
    if problem is None:
        try:
            ItemMessage(export=export, member=member.name, blob=blob, size=member.size,
                        trace="00-" + "0" * 32 + "-" + "0" * 16 + "-01").to_json()
        except ValueError as exc:
            problem = str(exc)
    if problem is None:
        return member
    reason = "name_too_long" if "limit" in problem or "size budget" in problem \
        else "unsafe_name"
    return replace(member, rejected=reason, detail=f"item blob name: {problem}")


def _now() -> str:
    return datetime.now(UTC).isoformat()
