"""Rebuilds the ledger from the mailboxes: after the ledger table is lost (a storage account
re-created, a restore, another deployment), every message in a mailbox's archive folder that
carries our archive-key property becomes an `imported` ledger row again, so a replay writes
nothing twice.

Each mailbox's folder is read a page at a time (only the id and the archive key), through the
same per-mailbox gate as the writes. A row that exists is left alone (its writer knows more).
When a mailbox is done it is marked covered: until then the writer asks Graph before every
new write to that mailbox (shared.mailbox_writer), so a lost ledger never means duplicates,
only slower writes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from shared.graph import Failure, GraphError, GraphMailboxes
from shared.ledger import Ledger

Progress = Callable[[int, int, str], None]  # done, total, what


@dataclass
class MailboxRebuild:
    mailbox: str
    messages: int = 0  # carrying an archive key
    restored: int = 0  # ledger rows written
    known: int = 0  # already in the ledger
    duplicates: int = 0  # a second message with the same key (reported, not touched)
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"mailbox": self.mailbox, "messages": self.messages, "restored": self.restored,
                "known": self.known, "duplicates": self.duplicates, "error": self.error}


class LedgerRebuilder:
    def __init__(self, graph: GraphMailboxes, ledger: Ledger,
                 run_io: Callable[..., Awaitable[Any]], folder_name: str,
                 progress: Progress | None = None, page_size: int = 250) -> None:
        self._graph = graph
        self._ledger = ledger
        self._run_io = run_io
        self._folder_name = folder_name
        self._progress = progress or (lambda done, total, what: None)
        self._page_size = page_size

    async def run(self, mailboxes: Iterable[str], parallel: int = 4) -> list[MailboxRebuild]:
        """Mailboxes (UPNs or addresses) `parallel` at a time; each one's pages in order."""
        names = sorted({m.lower() for m in mailboxes})
        slots = asyncio.Semaphore(parallel)
        done: list[MailboxRebuild] = []

        async def one(name: str) -> MailboxRebuild:
            async with slots:
                result = await self.mailbox(name)
            done.append(result)
            self._progress(len(done), len(names), f"{name}: {result.messages} message(s)"
                           + (f" ({result.error})" if result.error else ""))
            return result

        return list(await asyncio.gather(*(one(n) for n in names)))

    async def mailbox(self, name: str) -> MailboxRebuild:
        result = MailboxRebuild(name)
        try:
            user = await self._graph.get_user(name)
            if user is None:
                result.error = "not in the directory"
                return result
            folder = await self._graph.find_folder(user.id, self._folder_name)
            if folder is None:  # nothing was ever archived there; the writer marks it later
                return result
            seen: Counter[str] = Counter()
            async for page in self._graph.archived_keys(user.id, folder, self._page_size):
                fresh = []
                for key, message_id in page:
                    seen[key] += 1
                    if seen[key] > 1:
                        result.duplicates += 1
                    else:
                        fresh.append((key, message_id))
                added = await asyncio.gather(*(
                    self._run_io(self._ledger.restore, user.id, key, message_id)
                    for key, message_id in fresh))
                result.messages += len(fresh)
                result.restored += sum(1 for a in added if a)
                result.known += sum(1 for a in added if not a)
                self._progress(0, 0, f"{name}: {result.messages} message(s) read")
            await self._run_io(self._ledger.mark_covered, user.id, "rebuild")
        except GraphError as error:
            result.error = ("no mailbox" if error.failure is Failure.NO_MAILBOX
                            else f"Graph: {error.status} {error.code}")
        return result
