"""Graph's 4 concurrent requests per mailbox are per application, not per process: the slots
are blobs in the gate container (`<digest of mailbox>/<0..3>`), and a process may use a slot
only while it holds the blob's lease. Every worker process on every instance asks the same
blobs, so together they never have more than 4 requests in flight on a mailbox.

A lease is taken when a request finds no free slot in its process, reused by that process's
requests, and given back after HOLD_SECONDS so that other processes get their turn. The lease
lasts LEASE_SECONDS (> HOLD_SECONDS): a process that dies frees its slots within that time.
Storage cost: about 2 calls per mailbox and process every HOLD_SECONDS of activity (a lease
and its release), not one per Graph request; at 100 mailboxes a 10 s hold cost ~6% of the
import's CPU.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobLeaseClient, ContainerClient

from shared.telemetry import digest

LEASE_SECONDS = 45  # blob leases last 15-60 s
HOLD_SECONDS = 30.0  # at most this long in one process before the slot is given back


@dataclass
class Lease:
    blob: str
    client: BlobLeaseClient
    until: float  # monotonic: not to be used after this (the lease ends 15 s later)
    idle_since: float = 0.0


class BlobSlots:
    """Leases on the slot blobs of a mailbox; blocking calls run through `run_io`."""

    def __init__(self, container: ContainerClient, per_mailbox: int,
                 run_io: Callable[..., Awaitable[Any]], hold_seconds: float = HOLD_SECONDS
                 ) -> None:
        self._container = container
        self._per_mailbox = per_mailbox
        self._run_io = run_io
        self._hold = min(hold_seconds, LEASE_SECONDS - 10)

    async def acquire(self, mailbox: str, held: set[str]) -> Lease | None:
        """A slot not in `held` (this process's), or None when other processes hold them all."""
        lease: Lease | None = await self._run_io(self._acquire, mailbox, held)
        return lease

    async def release(self, lease: Lease) -> None:
        await self._run_io(self._release, lease)

    def _acquire(self, mailbox: str, held: set[str]) -> Lease | None:
        prefix = digest(mailbox)
        slots = [f"{prefix}/{n}" for n in range(self._per_mailbox)]
        random.shuffle(slots)  # processes do not all try slot 0 first
        for name in slots:
            if name in held:
                continue
            started = time.monotonic()
            client = self._lease(name)
            if client is not None:
                return Lease(name, client, started + self._hold)
        return None

    def _lease(self, name: str) -> BlobLeaseClient | None:
        """The slot's lease, or None when another process holds it."""
        blob = self._container.get_blob_client(name)
        client = BlobLeaseClient(blob)
        for _ in range(2):
            try:
                client.acquire(lease_duration=LEASE_SECONDS)
                return client
            except ResourceNotFoundError:  # the slot's first use: make its blob
                with contextlib.suppress(ResourceExistsError):
                    blob.upload_blob(b"", overwrite=False)
            except HttpResponseError as exc:
                if exc.status_code == 409:
                    return None
                raise
        return None

    @staticmethod
    def _release(lease: Lease) -> None:
        with contextlib.suppress(HttpResponseError):  # expired already: no longer ours
            lease.client.release()
