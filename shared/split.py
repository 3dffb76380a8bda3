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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from azure.storage.blob import BlobClient, ContainerClient
from azure.storage.queue import QueueClient

from shared.blob_reader import BlobRangeReader
from shared.export_format import (
    DEFAULT_LIMITS,
    Limits,
    Member,
    check_export,
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
            reader = BlobRangeReader(blob)
            zf = zipfile.ZipFile(reader)  # noqa: SIM115 - closed below
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            detail = f"the export is not a readable ZIP: {exc}"
            log.error("export unreadable", extra={"export": export, "reason": "corrupt_zip"})
            self._state.record_export(ExportRecord(
                name=export, day=day, manifest_count=None, members=0, queued=0, rejected=0,
                error=f"corrupt_zip: {detail}", split_at=_now()))
            return SplitResult(export, 0, 0, 0, error="corrupt_zip")
        with zf:
            check = check_export(zf, self._limits)
            quarantined = [ItemOutcome(export, m.name, Outcome.QUARANTINED, reason=m.rejected or "",
                                       detail=m.detail, size=m.size)
                           for m in check.members if m.rejected]
            self._outcomes.record_many(quarantined)
            queued, failed = self._extract_all(export, zf, check.accepted)
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

    def _extract_all(self, export: str, zf: zipfile.ZipFile,
                     members: list[Member]) -> tuple[int, list[ItemOutcome]]:
        queued = 0
        failed: list[ItemOutcome] = []
        chunk: list[_Extracted] = []
        chunk_bytes = 0
        with ThreadPoolExecutor(self._workers, thread_name_prefix="split") as pool:
            for member in members:
                try:
                    extracted = self._extract(export, zf, member)
                except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError,
                        NotImplementedError) as exc:
                    failed.append(ItemOutcome(export, member.name, Outcome.QUARANTINED,
                                              reason="corrupt_member", detail=str(exc)[:500],
                                              size=member.size))
                    continue
                chunk.append(extracted)
                chunk_bytes += len(extracted.data or b"")
                if len(chunk) >= CHUNK_MEMBERS or chunk_bytes >= CHUNK_BYTES:
                    queued += self._flush(export, chunk, pool)
                    chunk, chunk_bytes = [], 0
            if chunk:
                queued += self._flush(export, chunk, pool)
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

    def _flush(self, export: str, chunk: list[_Extracted], pool: ThreadPoolExecutor) -> int:
        uploads = [pool.submit(self._items.upload_blob, item_blob_name(export, e.member.name),
                               e.data, overwrite=True)
                   for e in chunk if e.data is not None]
        for future in uploads:
            future.result()
        # The outcome row goes in before the message, so an import never races behind it.
        self._outcomes.record_many(ItemOutcome(export, e.member.name, Outcome.QUEUED,
                                               size=e.member.size) for e in chunk)
        messages = [ItemMessage(export=export, member=e.member.name,
                                blob=item_blob_name(export, e.member.name), size=e.member.size,
                                trace=begin_item_trace(export, e.member.name)).to_json()
                    for e in chunk]
        for sent in [pool.submit(self._queue.send_message, m) for m in messages]:
            sent.result()
        return len(chunk)


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


def _now() -> str:
    return datetime.now(UTC).isoformat()
