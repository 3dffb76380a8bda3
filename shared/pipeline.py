"""What each function does, given the process's Runtime: the seam between triggers and core."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient

from shared.clients import Runtime
from shared.fetch import FetchResult
from shared.importer import ImportIncomplete
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
from shared.retry_policy import RetryPolicy
from shared.split import SplitResult
from shared.storage_retry import retry_connection
from shared.telemetry import digest, event, queue_age, redact

log = logging.getLogger(__name__)


def fetch_exports(rt: Runtime) -> FetchResult:
    return rt.fetcher().run()


def split_export_blob(rt: Runtime, blob: BlobClient) -> SplitResult:
    return rt.splitter().split(blob.blob_name, blob)


async def import_queue_message(rt: Runtime, body: str, dequeue_count: int,
                               inserted_on: datetime | None = None) -> ItemOutcome:
    """A failed delivery re-queues the item with a growing delay (shared.retry_policy) and
    returns, so an outage heals without an admin; past the retry horizon the item is recorded
    `failed` and moved to the poison queue. Raises (the queue's own retries) only when even
    that could not be done, recording `failed` first on the last delivery."""
    if inserted_on is not None:
        aware = inserted_on if inserted_on.tzinfo else inserted_on.replace(tzinfo=UTC)
        queue_age.record((datetime.now(UTC) - aware).total_seconds())
    try:
        return await rt.importer().import_message(body, dequeue_count)
    except Exception as exc:
        if not isinstance(exc, RetryLater):
            log.exception("import attempt failed", extra={"dequeue_count": dequeue_count})
        handled = await _retry_later(rt, body, exc)
        if handled is not None:
            return handled
        if dequeue_count >= rt.settings.max_dequeue_count:
            await _record_failure(rt, body, exc)
        raise


async def _retry_later(rt: Runtime, body: str, exc: Exception) -> ItemOutcome | None:
    """Re-queues the item for later, or past its horizon records it failed and poisons it;
    None when the queue could not be written (the host's redelivery is the fallback)."""
    try:
        message = ItemMessage.from_json(body)
    except ValueError:
        return None
    s = rt.settings
    policy = RetryPolicy(s.retry_base_seconds, s.retry_max_delay_seconds,
                         s.retry_horizon_seconds)
    step = policy.next(message, time.time())
    error = f"{type(exc).__name__}: {redact(str(exc))[:300]}"
    try:
        if step is None:
            failed = _outcome(message, exc, Outcome.FAILED, reason="retries_exhausted",
                              detail=f"{error}; in the poison queue, replay it")
            await rt.run_io(rt.outcomes.record, failed)
            await rt.run_io(_send_poison, rt, body)
            event(log, "item retries exhausted", logging.ERROR, export=message.export,
                  archive_key=digest(failed.archive_key), attempts=message.attempt + 1)
            return failed
        retry, delay = step
        await rt.run_io(functools.partial(retry_connection, rt.items_queue.send_message,
                                          retry.to_json(), visibility_timeout=delay))
    except Exception:  # noqa: BLE001 - storage down too: the queue's own retries remain
        log.warning("could not re-queue the item; the queue will deliver it again",
                    exc_info=True)
        return None
    until = datetime.fromtimestamp(retry.retry_until, UTC).isoformat(timespec="seconds")
    waiting = _outcome(message, exc, Outcome.QUEUED, reason="retrying",
                       detail=f"retrying until {until} (attempt {retry.attempt}, next in "
                              f"{delay}s): {error}", retry_until=retry.retry_until)
    try:
        await rt.run_io(rt.outcomes.record, waiting)
    except Exception:  # noqa: BLE001 - the next attempt records its outcome anyway
        log.warning("could not record the retrying state", exc_info=True)
    event(log, "item retrying", logging.WARNING, export=message.export,
          archive_key=digest(waiting.archive_key), attempt=retry.attempt, delay=delay)
    return waiting


def _outcome(message: ItemMessage, exc: Exception, outcome: Outcome, **fields: Any
             ) -> ItemOutcome:
    """Keeps what is known: the archive key and the mailboxes already written."""
    known: dict[str, Any] = {}
    if isinstance(exc, ImportIncomplete):
        known = {"archive_key": exc.archive_key, "kind": exc.kind, "mailboxes": exc.mailboxes}
    return ItemOutcome(message.export, message.member, outcome, size=message.size,
                       **known, **fields)


def _send_poison(rt: Runtime, body: str) -> None:
    poison = rt.queue(f"{rt.settings.items_queue}-poison")
    try:
        retry_connection(poison.send_message, body)
    except ResourceNotFoundError:
        with contextlib.suppress(ResourceExistsError):
            poison.create_queue()
        retry_connection(poison.send_message, body)


async def _record_failure(rt: Runtime, body: str, exc: Exception) -> None:
    try:
        message = ItemMessage.from_json(body)
    except ValueError:
        return
    await rt.run_io(rt.outcomes.record, _outcome(
        message, exc, Outcome.FAILED, reason="retries_exhausted",
        detail=f"{type(exc).__name__}: {redact(str(exc))[:300]}; in the poison queue, replay it"))


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
