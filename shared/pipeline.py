"""What each function does, given the process's Runtime: the seam between triggers and core."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from azure.storage.blob import BlobClient

from shared.clients import Runtime
from shared.fetch import FetchResult
from shared.mailbox_writer import RetryLater
from shared.messages import ItemMessage
from shared.outcomes import ItemOutcome, Outcome
from shared.replay import Replayer, ReplayResult
from shared.reports import publish_reports
from shared.split import SplitResult
from shared.telemetry import event, queue_age

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
        detail=f"{type(exc).__name__}: {str(exc)[:300]}; in the poison queue, replay it",
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
    """The HTTP replay API: a JSON body naming what to re-queue; answers with counts."""
    try:
        request = json.loads(body or b"{}")
        result = _replay(Replayer(rt), request, bool(request.get("dry_run", False)))
    except (ValueError, KeyError, TypeError) as exc:
        return 400, json.dumps({"error": f"bad replay request: {exc}", "usage": REPLAY_USAGE})
    return 200, json.dumps(result.to_json())


REPLAY_USAGE = {
    "export": {"kind": "export", "exports": ["<export blob name>"]},
    "days": {"kind": "days", "from": "YYYY-MM-DD", "to": "YYYY-MM-DD"},
    "item": {"kind": "item", "export": "<export>", "member": "<member.eml>"},
    "outcomes": {"kind": "outcomes", "outcomes": ["unmapped", "failed"], "exports": "optional"},
    "poison": {"kind": "poison"},
    "any": {"dry_run": "true to only count"},
}


def _replay(replayer: Replayer, request: dict[str, Any], dry_run: bool) -> ReplayResult:
    kind = request["kind"]
    if kind == "export":
        return replayer.exports([str(n) for n in request["exports"]], dry_run)
    if kind == "days":
        return replayer.days(date.fromisoformat(request["from"]),
                             date.fromisoformat(request["to"]), dry_run)
    if kind == "item":
        return replayer.item(str(request["export"]), str(request["member"]), dry_run)
    if kind == "outcomes":
        wanted = {Outcome(o) for o in request["outcomes"]}
        exports = request.get("exports")
        return replayer.outcomes(wanted, [str(e) for e in exports] if exports else None,
                                 dry_run)
    if kind == "poison":
        return replayer.poison(dry_run)
    raise ValueError(f"unknown kind {kind!r}")
