"""The live mapping CSV in blob storage, re-read when its ETag changes (checked every minute)."""

from __future__ import annotations

import logging
import threading
import time

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from shared.mapping import MappingTable, RowError, parse_mapping_csv

log = logging.getLogger(__name__)


class InvalidMapping(ValueError):
    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} bad row(s); first on line {errors[0].line}: "
                         f"{errors[0].reason}")
        self.errors = errors


class MappingStore:
    def __init__(self, blobs: BlobServiceClient, location: str,
                 check_seconds: float = 60.0) -> None:
        container, _, name = location.partition("/")
        self._blob = blobs.get_blob_client(container, name)
        self._check_seconds = check_seconds
        self._table = MappingTable()
        self._etag: str | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def current(self) -> MappingTable:
        with self._lock:
            if time.monotonic() - self._checked >= self._check_seconds:
                self._checked = time.monotonic()
                self._refresh()
            return self._table

    def _refresh(self) -> None:
        try:
            props = self._blob.get_blob_properties()
        except ResourceNotFoundError:
            self._table, self._etag = MappingTable(), None
            return
        if props.etag == self._etag:
            return
        text = self._blob.download_blob().readall().decode("utf-8-sig", errors="replace")
        table, errors = parse_mapping_csv(text)
        if errors:  # upload validates; a hand-edited bad file keeps the last good table
            log.error("mapping CSV has bad rows; keeping the previous mapping",
                      extra={"bad_rows": len(errors), "first_bad_line": errors[0].line})
            return
        self._table, self._etag = table, props.etag

    def upload(self, text: str) -> MappingTable:
        """Validates the whole file first; an invalid file is never half-applied."""
        table, errors = parse_mapping_csv(text)
        if errors:
            raise InvalidMapping(errors)
        self._blob.upload_blob(text.encode("utf-8"), overwrite=True)  # one atomic put
        return table
