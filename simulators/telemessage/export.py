"""Export ZIPs as TeleMessage delivers them: one EML member per item plus one `.mf` manifest.

ZIPs are written member by member to disk (never held whole in memory). `zipfile` switches to
ZIP64 by itself where needed (members over 4 GiB are impossible here; archives over 4 GiB or
65,535 members get ZIP64 end records), so no `force_zip64` stream is involved.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from simulators.telemessage.day import generate_day
from simulators.telemessage.eml_builder import SimItem, build_eml
from simulators.telemessage.org import generate_org

DEFAULT_CREATED_DELAY = timedelta(minutes=30)
BENCHMARK_DAY = date(2026, 11, 25)


@dataclass(frozen=True)
class ExportFile:
    """One export ZIP on disk; `item_count` is None for a ZIP not built here."""

    name: str
    path: Path
    size: int
    sha256: str
    created_at: datetime
    item_count: int | None


def created_at_for(day: date, delay: timedelta = DEFAULT_CREATED_DELAY) -> datetime:
    """When TeleMessage zips a day's items: the next UTC midnight plus `delay`."""
    return datetime.combine(day + timedelta(days=1), time(), UTC) + delay


def export_name(day: date, file_number: int, created_at: datetime) -> str:
    """`YYYYMMDD0000-TeleMessage_<file#>_<TimeZipped>.zip`."""
    return f"{day:%Y%m%d}0000-TeleMessage_{file_number}_{created_at:%Y%m%d%H%M%S}.zip"


def describe(path: Path, created_at: datetime, item_count: int | None) -> ExportFile:
    with path.open("rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    return ExportFile(path.name, path, path.stat().st_size, digest, created_at, item_count)


def member_names(items: Sequence[SimItem]) -> list[str]:
    """`<archive id>.eml`; further captures of the same id get `-2`, `-3` ... before `.eml`."""
    seen: Counter[str] = Counter()
    names = []
    for item in items:
        seen[item.archive_id] += 1
        count = seen[item.archive_id]
        names.append(f"{item.archive_id}{f'-{count}' if count > 1 else ''}.eml")
    return names


def _info(name: str, when: datetime) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, when.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def write_export(path: Path, members: Iterable[tuple[str, datetime, bytes]],
                 zipped_at: datetime, compresslevel: int = 6) -> int:
    """Write (name, time, EML bytes) members, then the manifest; returns the EML count."""
    names = []
    with zipfile.ZipFile(path, "w") as archive:
        for name, when, data in members:
            archive.writestr(_info(name, when), data, compresslevel=compresslevel)
            names.append(name)
        manifest = "".join(f"{line}\r\n" for line in [f"Count: {len(names)}", *names])
        archive.writestr(_info(f"{path.stem}.mf", zipped_at), manifest.encode("utf-8"))
    return len(names)


def build_exports(items: Sequence[SimItem], day: date, created_at: datetime,
                  max_items_per_zip: int = 1000, *, out_dir: Path) -> list[ExportFile]:
    """The ZIPs of one day, `max_items_per_zip` items each (a day without items: one empty ZIP)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = member_names(items)
    exports = []
    for number, start in enumerate(range(0, len(items), max_items_per_zip) or [0], start=1):
        path = out_dir / export_name(day, number, created_at)
        chunk = range(start, min(start + max_items_per_zip, len(items)))
        count = write_export(path, ((names[n], items[n].captured_at, build_eml(items[n]))
                                    for n in chunk), created_at)
        exports.append(describe(path, created_at, count))
    return exports


def build_large_export(path: Path, target_bytes: int, seed: int,
                       day: date = BENCHMARK_DAY) -> ExportFile:
    """A benchmark ZIP of at least `target_bytes`, written quickly and streaming.

    About 300 generated EMLs (attachments shrunk to 5-40 KB, deletion events left out) are
    reused as templates with fresh unique archive ids; one item in 400 carries a 1-2 MB
    attachment. That averages about 10 KB per item: 1 GB is roughly 100,000 items.
    """
    rng = random.Random(f"telemessage-large:{seed}")
    sample = [item for item in generate_day(generate_org(seed), day, 400, seed, 0, 0)
              if item.kind != "deleted"]

    def template(item: SimItem, low: int, high: int) -> tuple[bytes, datetime, bytes]:
        attachments = tuple(dataclasses.replace(a, size=rng.randint(low, high))
                            for a in item.attachments)
        eml = build_eml(dataclasses.replace(item, attachments=attachments))
        return item.archive_id.encode(), item.captured_at, eml

    templates = [template(item, 5_000, 40_000) for item in sample]
    heavy = [template(item, 1_000_000, 2_000_000)
             for item in [item for item in sample if item.attachments][:4]]

    def members() -> Iterator[tuple[str, datetime, bytes]]:
        n = 0
        while path.stat().st_size < target_bytes:  # the ZIP being written, give or take a buffer
            pool = heavy if n % 400 == 399 else templates
            old_id, when, eml = pool[n % len(pool)]
            new_id = f"TG-{day:%Y%m%d}-{(n * 0x9E3779B1 + seed) & 0xFFFFFFFF:08x}"  # a bijection
            yield f"{new_id}.eml", when, eml.replace(old_id, new_id.encode())
            n += 1

    created_at = created_at_for(day)
    return describe(path, created_at, write_export(path, members(), created_at, compresslevel=1))
