"""What each function does, given the process's Runtime: the seam between triggers and core."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.storage.blob import BlobClient

from shared.clients import Runtime
from shared.fetch import FetchResult
from shared.mailbox_writer import RetryLater
from shared.messages import ItemMessage
from shared.outcomes import ItemOutcome, Outcome
from shared.replay import (
    MAX_BODY_BYTES,
    MAX_DAYS,
    MAX_NAMES,
    REPLAYABLE,
    Replayer,
    ReplayRequest,
    ReplayResult,
    job_state,
    run_job,
    submit_job,
)
from shared.reports import publish_reports
from shared.split import SplitResult
from shared.telemetry import event, queue_age, redact

log = logging.getLogger(__name__)


def fetch_exports(rt: Runtime) -> FetchResult:
    return rt.fetcher().run()


def split_export_blob(rt: Runtime, blob: BlobClient) -> SplitResult:
    return rt.splitter().split(blob.blob_name, blob)


async def import_queue_message(rt: Runtime, body: str, dequeue_count: int,
                               inserted_on: datetime | None = None) -> ItemOutcome:
    """Raises to have the message retried; on its last delivery records `failed` first, so
    the report shows the item as failed (and in the poison queue) rather than pending."""
    if inserted_on is not None:
        aware = inserted_on if inserted_on.tzinfo else inserted_on.replace(tzinfo=UTC)
        queue_age.record((datetime.now(UTC) - aware).total_seconds())
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
        detail=f"{type(exc).__name__}: {redact(str(exc))[:300]}; in the poison queue, replay it",
        size=message.size))


def publish_reports_now(rt: Runtime) -> list[dict[str, Any]]:
    """The `reconcile` timer: reports of recent exports, and the queue depths to alert on."""
    depths = rt.queue_depths()
    event(log, "queue depth", logging.ERROR if depths["poison"] else logging.INFO,
          items=depths["items"], poison=depths["poison"])
    reports = rt.blob_service.get_container_client(rt.settings.reports_container)
    return publish_reports(rt.state, rt.outcomes, reports, datetime.now(UTC),
                           grace=timedelta(minutes=rt.settings.report_grace_minutes))


def replay_request(rt: Runtime, body: bytes) -> tuple[int, str]:
    """The HTTP replay API: a JSON body naming what to replay, checked and capped. One item is
    replayed at once (200 with the counts); anything else becomes a job on the replay queue
    (202 with its id), whose state and counts `{"kind": "job", "job": id}` answers."""
    try:
        if len(body) > MAX_BODY_BYTES:
            raise ValueError(f"the body is over {MAX_BODY_BYTES} bytes")
        request = ReplayRequest.from_json(json.loads(body or b"{}"))
    except (ValueError, KeyError, TypeError) as exc:
        return 400, json.dumps({"error": f"bad replay request: {exc}", "usage": REPLAY_USAGE})
    if request.kind == "job":
        state = job_state(rt, request.job)
        return (200, json.dumps(state)) if state else (404, json.dumps({"error": "no such job"}))
    if request.kind == "item":
        return 200, json.dumps(request.run(Replayer(rt)).to_json())
    return 202, json.dumps(submit_job(rt, request))


def run_replay_job(rt: Runtime, body: str, dequeue_count: int) -> ReplayResult:
    return run_job(rt, body, last_attempt=dequeue_count >= rt.settings.max_dequeue_count)


REPLAY_USAGE = {
    "export": {"kind": "export", "exports": [f"<export blob name> (1 to {MAX_NAMES})"]},
    "days": {"kind": "days", "from": "YYYY-MM-DD", "to": f"YYYY-MM-DD (at most {MAX_DAYS} days)"},
    "item": {"kind": "item", "export": "<export>", "member": "<member.eml>"},
    "outcomes": {"kind": "outcomes", "outcomes": list(REPLAYABLE), "exports": "optional"},
    "poison": {"kind": "poison"},
    "job": {"kind": "job", "job": "<id answered with 202>"},
    "any": {"dry_run": "true to only count"},
}
