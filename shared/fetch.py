"""Fetch (timer): TeleMessage exports created since the checkpoint -> the exports container.

Windows of at most a day, oldest first, so a run after days of downtime catches up in order;
the checkpoint moves past a window only when all its exports are stored. Each ZIP is streamed
into staged blocks and committed only when its size and SHA-256 match what the API listed, so
a blob in the container is always a whole export (and its BlobCreated event fires once).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobClient, ContainerClient

from shared.blob_names import blob_name_problem
from shared.state import StateStore
from shared.telemessage import ExportInfo, TeleMessageClient, TeleMessageError
from shared.telemetry import event, fetch_bytes, fetch_duration, redact

log = logging.getLogger(__name__)

BLOCK_BYTES = 4 * 1024 * 1024
MAX_WINDOW = timedelta(days=1)


@dataclass
class FetchResult:
    stored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already in the container
    bytes: int = 0
    checkpoint: str = ""
    error: str = ""


class Fetcher:
    def __init__(self, client: TeleMessageClient, exports: ContainerClient, state: StateStore,
                 initial_lookback: timedelta,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._client = client
        self._exports = exports
        self._state = state
        self._initial_lookback = initial_lookback
        self._clock = clock

    def run(self) -> FetchResult:
        result = FetchResult()
        now = self._clock()
        start = self._state.checkpoint() or now - self._initial_lookback
        try:
            while start < now:
                end = min(start + MAX_WINDOW, now)
                for export in self._client.list_exports(start, end):
                    self._store(export, result)
                self._state.set_checkpoint(end)
                start = end
        except TeleMessageError as exc:
            result.error = redact(str(exc))  # stored in the state table, shown by `status`
            log.error("fetch failed; checkpoint unchanged, the next run retries",
                      extra={"reason": type(exc).__name__, "detail": result.error[:300]})
        result.checkpoint = start.isoformat()
        summary = {"at": now.isoformat(), "stored": len(result.stored),
                   "skipped": len(result.skipped), "bytes": result.bytes,
                   "checkpoint": result.checkpoint, "error": result.error}
        self._state.record_run("fetch", summary)
        fetch_duration.record((self._clock() - now).total_seconds())
        event(log, "fetch run", logging.ERROR if result.error else logging.INFO, **summary)
        return result

    def _store(self, export: ExportInfo, result: FetchResult) -> None:
        if (problem := blob_name_problem(export.name)) is not None:
            raise TeleMessageError(f"the API listed an export name that is not a safe blob "
                                   f"name ({problem}); nothing stored, fix it at TeleMessage")
        blob = self._exports.get_blob_client(export.name)
        try:
            props = blob.get_blob_properties()
            if props.size == export.size:
                result.skipped.append(export.name)
                return
            raise TeleMessageError(f"{export.name} is already stored with {props.size} bytes, "
                                   f"the API lists {export.size}; left untouched")
        except ResourceNotFoundError:
            pass
        digest = hashlib.sha256()
        block_ids: list[BlobBlock] = []
        buffer = bytearray()
        size = 0
        for chunk in self._client.download(export):
            digest.update(chunk)
            size += len(chunk)
            buffer += chunk
            while len(buffer) >= BLOCK_BYTES:
                block_ids.append(self._stage(blob, len(block_ids), bytes(buffer[:BLOCK_BYTES])))
                del buffer[:BLOCK_BYTES]
        if buffer or not block_ids:
            block_ids.append(self._stage(blob, len(block_ids), bytes(buffer)))
        if size != export.size:
            raise TeleMessageError(f"{export.name}: downloaded {size} bytes, listed {export.size}")
        if export.sha256 and digest.hexdigest() != export.sha256.lower():
            raise TeleMessageError(f"{export.name}: SHA-256 mismatch; not stored")
        blob.commit_block_list(block_ids, metadata={"sha256": digest.hexdigest(),
                                                    "source": "telemessage-api"})
        result.stored.append(export.name)
        result.bytes += size
        fetch_bytes.add(size)
        log.info("export stored", extra={"export": export.name, "bytes": size})

    @staticmethod
    def _stage(blob: BlobClient, index: int, data: bytes) -> BlobBlock:
        block_id = f"{index:08d}"  # the SDK base64-encodes block ids itself
        blob.stage_block(block_id, data)
        return BlobBlock(block_id=block_id)
