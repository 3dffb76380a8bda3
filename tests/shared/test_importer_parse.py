"""The importer parses an item off the event loop, so one slow EML does not stall the others."""

import asyncio
import threading
from dataclasses import replace
from typing import Any

import pytest

from shared.clients import Runtime
from shared.eml import parse_eml
from shared.mapping import Directory, Mapper, MappingTable
from shared.messages import ItemMessage
from shared.outcomes import Outcome
from shared.settings import Settings

pytestmark = pytest.mark.azurite

EML = (b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nFrom: A B 447700900123 <a@contoso.com>\r\n"
       b"To: C D 972541234567 <c@contoso.com>\r\nSubject: hi\r\n\r\nhello\r\n")


async def test_parse_runs_in_the_io_pool_not_on_the_event_loop(
        storage_env: dict[str, str]) -> None:
    rt = Runtime(Settings.from_env(storage_env))
    items = rt.blob_service.get_container_client(rt.settings.items_container)
    items.upload_blob("x/TG-1.eml", EML, overwrite=True)
    loop_thread = threading.get_ident()
    parsed_on: list[int] = []

    async def run_io(func: Any, *args: Any) -> Any:
        if getattr(func, "func", func) is parse_eml:  # parse_eml, maybe with its options
            def parse(data: bytes) -> Any:
                parsed_on.append(threading.get_ident())
                return func(data)
            return await asyncio.to_thread(parse, *args)
        return await asyncio.to_thread(func, *args)

    async def nobody(address: str) -> None:
        return None

    importer = replace(rt._build_importer(), run_io=run_io,
                       mapper=Mapper(MappingTable, Directory(nobody), auto_mapping=True))
    outcome = await importer.import_message(ItemMessage(
        export="x.zip", member="TG-1.eml", blob="x/TG-1.eml", size=len(EML)).to_json())
    assert outcome.outcome is Outcome.UNMAPPED
    assert parsed_on and parsed_on[0] != loop_thread
