"""What each function does, given the process's Runtime: the seam between triggers and core."""

from __future__ import annotations

import logging

from azure.storage.blob import BlobClient

from shared.clients import Runtime
from shared.fetch import FetchResult
from shared.mailbox_writer import RetryLater
from shared.messages import ItemMessage
from shared.outcomes import ItemOutcome, Outcome
from shared.split import SplitResult

log = logging.getLogger(__name__)


def fetch_exports(rt: Runtime) -> FetchResult:
    return rt.fetcher().run()


def split_export_blob(rt: Runtime, blob: BlobClient) -> SplitResult:
    return rt.splitter().split(blob.blob_name, blob)


async def import_queue_message(rt: Runtime, body: str, dequeue_count: int) -> ItemOutcome:
    """Raises to have the message retried; on its last delivery records `failed` first, so
    the report shows the item as failed (and in the poison queue) rather than pending."""
    try:
        return await rt.importer().import_message(body)
    except Exception as exc:
        if dequeue_count >= rt.settings.max_dequeue_count:
            await _record_failure(rt, body, exc)
        if not isinstance(exc, RetryLater):
            log.exception("import attempt failed", extra={"dequeue_count": dequeue_count})
        raise


async def _record_failure(rt: Runtime, body: str, exc: Exception) -> None:
    try:
        message = ItemMessage.from_json(body)
    except ValueError:
        return
    await rt.run_io(rt.outcomes.record, ItemOutcome(
        message.export, message.member, Outcome.FAILED, reason="retries_exhausted",
        detail=f"{type(exc).__name__}: {str(exc)[:300]}; in the poison queue, replay it",
        size=message.size))
