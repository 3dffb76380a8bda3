"""`TeleMessageSimulator`: a synthetic organization's daily exports behind the export API."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType

from simulators._server import BackgroundServer
from simulators.telemessage.app import ApiState, Faults, create_app
from simulators.telemessage.day import generate_day
from simulators.telemessage.eml_builder import SimItem
from simulators.telemessage.export import (
    DEFAULT_CREATED_DELAY,
    ExportFile,
    build_exports,
    created_at_for,
    describe,
)
from simulators.telemessage.org import generate_org

_GENERATOR_SOURCES = ("org.py", "content.py", "day.py", "eml_builder.py", "export.py")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _source_digest() -> str:
    """Changes whenever the generator code changes, so stale cached ZIPs are never served."""
    digest = hashlib.sha256()
    for name in _GENERATOR_SOURCES:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


class TeleMessageSimulator:
    """Serves the export ZIPs of `days` (created at the next midnight + `created_delay`, UTC).

    ZIPs are generated on `start()` under `workdir`, in a directory keyed by every generation
    parameter and the generator's source, so a later start with the same parameters reuses them.
    `clock` (an aware UTC datetime) decides which exports are visible and when tokens expire.
    """

    def __init__(self, workdir: Path, username: str = "archiver",
                 password: str = "s3cret",  # noqa: S107 - the simulator's demo credentials
                 seed: int = 7, employees: int = 60, externals: int = 40,
                 days: Iterable[date] | None = None, items_per_day: int = 2000,
                 max_items_per_zip: int = 1000, oversize: int = 3, large_attachments: int = 5,
                 encrypted: int = 2, created_delay: timedelta = DEFAULT_CREATED_DELAY,
                 clock: Callable[[], datetime] | None = None,
                 domain: str = "contoso.com") -> None:
        self.workdir = Path(workdir)
        self.username = username
        self.password = password
        self.seed = seed
        self.items_per_day = items_per_day
        self.max_items_per_zip = max_items_per_zip
        self.oversize = oversize
        self.large_attachments = large_attachments
        self.encrypted = encrypted
        self.created_delay = created_delay
        self.clock = clock or _utc_now
        self.days = list(days) if days is not None else [(self.clock() - timedelta(days=1)).date()]
        self.org = generate_org(seed, employees, externals, domain)
        self.faults = Faults()
        self._state = ApiState(username, password, self.clock, self.faults, random.Random(seed))
        self._items: dict[date, list[SimItem]] = {}
        self._generated = False
        self._server: BackgroundServer | None = None

    def items(self, day: date) -> list[SimItem]:
        """The items of `day`, in the order they are zipped."""
        if day not in self._items:
            self._items[day] = generate_day(self.org, day, self.items_per_day, self.seed,
                                            self.oversize, self.large_attachments, self.encrypted)
        return self._items[day]

    @property
    def exports(self) -> list[ExportFile]:
        return list(self._state.exports)

    def add_export(self, path: Path, created_at: datetime) -> ExportFile:
        """Also serve an arbitrary file (e.g. a damaged ZIP) under its own name."""
        export = describe(Path(path), created_at, None)
        self._state.exports = (*self._state.exports, export)
        return export

    def _day_exports(self, day: date) -> list[ExportFile]:
        created_at = created_at_for(day, self.created_delay)
        params = [self.seed, self.org.domain, len(self.org.employees), len(self.org.externals),
                  day.isoformat(), self.items_per_day, self.max_items_per_zip, self.oversize,
                  self.large_attachments, self.encrypted, created_at.isoformat(),
                  _source_digest()]
        key = hashlib.sha256(json.dumps(params).encode()).hexdigest()[:20]
        folder = self.workdir / f"telemessage-{day:%Y%m%d}-{key}"
        index = folder / "index.json"
        if not index.exists():
            staging = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
            shutil.rmtree(staging, ignore_errors=True)
            built = build_exports(self.items(day), day, created_at, self.max_items_per_zip,
                                  out_dir=staging)
            (staging / "index.json").write_text(json.dumps(
                [{"name": e.name, "size": e.size, "sha256": e.sha256,
                  "item_count": e.item_count} for e in built]))
            try:
                staging.rename(folder)
            except OSError:  # another process completed the same folder first
                shutil.rmtree(staging)
        return [ExportFile(e["name"], folder / e["name"], e["size"], e["sha256"], created_at,
                           e["item_count"]) for e in json.loads(index.read_text())]

    def start(self, port: int | None = None) -> TeleMessageSimulator:
        """Generate (or reuse) the ZIPs, then serve the API on 127.0.0.1 (`port` or a free one)."""
        if self._server is not None:
            raise RuntimeError("the simulator is already started")
        if not self._generated:
            generated = [e for day in self.days for e in self._day_exports(day)]
            self._state.exports = (*generated, *self._state.exports)
            self._generated = True
        self._server = BackgroundServer(lambda: create_app(self._state), port=port).start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return self._server.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> TeleMessageSimulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
