"""Connector state in Table storage: the fetch checkpoint and one record per export split."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.tables import safe_key

_CHECKPOINT = ("checkpoint", "telemessage")


@dataclass
class ExportRecord:
    name: str
    day: str | None
    manifest_count: int | None
    members: int
    queued: int
    rejected: int
    problems: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""  # the whole export could not be read (corrupt ZIP, ...)
    split_at: str = ""


class StateStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def checkpoint(self) -> datetime | None:
        try:
            entity = self._table.get_entity(*_CHECKPOINT)
        except ResourceNotFoundError:
            return None
        return datetime.fromisoformat(entity["value"])

    def set_checkpoint(self, value: datetime) -> None:
        self._table.upsert_entity({"PartitionKey": _CHECKPOINT[0], "RowKey": _CHECKPOINT[1],
                                   "value": value.isoformat()}, mode=UpdateMode.REPLACE)

    def record_run(self, kind: str, summary: dict[str, Any]) -> None:
        self._table.upsert_entity({"PartitionKey": "run", "RowKey": kind,
                                   "summary": json.dumps(summary, default=str)[:30000]},
                                  mode=UpdateMode.REPLACE)

    def last_run(self, kind: str) -> dict[str, Any] | None:
        try:
            entity = self._table.get_entity("run", kind)
        except ResourceNotFoundError:
            return None
        return dict(json.loads(entity["summary"]))

    def record_export(self, record: ExportRecord) -> None:
        data = asdict(record)
        data["problems"] = json.dumps(record.problems)[:30000]
        self._table.upsert_entity({"PartitionKey": "export", "RowKey": safe_key(record.name),
                                   **data}, mode=UpdateMode.REPLACE)

    def export(self, name: str) -> ExportRecord | None:
        try:
            entity = self._table.get_entity("export", safe_key(name))
        except ResourceNotFoundError:
            return None
        return _export_from(entity)

    def exports(self) -> list[ExportRecord]:
        return [_export_from(e) for e in self._table.query_entities(
            "PartitionKey eq 'export'")]


def _export_from(entity: dict[str, Any]) -> ExportRecord:
    return ExportRecord(
        name=entity["name"], day=entity.get("day") or None,
        manifest_count=entity.get("manifest_count"), members=int(entity.get("members", 0)),
        queued=int(entity.get("queued", 0)), rejected=int(entity.get("rejected", 0)),
        problems=json.loads(entity.get("problems") or "[]"), error=entity.get("error", ""),
        split_at=entity.get("split_at", ""))
