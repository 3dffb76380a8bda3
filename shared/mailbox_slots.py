"""Graph's 4 concurrent requests per mailbox are per application, not per process: the slots
are blobs in the gate container (`<digest of mailbox>/<0..3>`), and a process may use a slot
only while it holds the blob's lease. Every worker process on every instance asks the same
blobs, so together they never have more than 4 requests in flight on a mailbox.

A lease is taken when a request finds no free slot in its process and reused by that
process's requests. At the end of each HOLD_SECONDS the slot is given back if another process
has asked for the mailbox's slots meanwhile (it rewrites the mailbox's `wanted` blob, at most
every WANT_EVERY_SECONDS while it waits; the holder compares that blob's ETag with the one it
saw last), and renewed otherwise: a busy mailbox that only one process serves loses no time to
hand-overs nobody takes. The lease lasts LEASE_SECONDS (> HOLD_SECONDS): a process that dies
frees its slots within that time. Storage cost: about 2 calls per slot and process every
HOLD_SECONDS of activity (a look at `wanted` and a renewal or release), not one per Graph
request.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobLeaseClient, ContainerClient

from shared.telemetry import digest

LEASE_SECONDS = 45  # blob leases last 15-60 s
HOLD_SECONDS = 30.0  # how long a slot stays with one process before it looks for demand
WANT_EVERY_SECONDS = 5.0  # how often a waiting process says so again
WANTED = "wanted"  # the blob (per mailbox) that waiting processes rewrite


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
        self._wanted_seen: dict[str, str | None] = {}  # per mailbox: the `wanted` ETag last seen

    async def acquire(self, mailbox: str, held: set[str]) -> Lease | None:
        """A slot not in `held` (this process's), or None when other processes hold them all."""
        lease: Lease | None = await self._run_io(self._acquire, mailbox, held)
        return lease

    async def release(self, lease: Lease) -> None:
        await self._run_io(self._release, lease)

    async def want(self, mailbox: str) -> None:
        """Tells the processes holding this mailbox's slots that this one is waiting."""
        await self._run_io(self._want, mailbox)

    async def extend(self, mailbox: str, lease: Lease) -> Lease | None:
        """At the end of a hold: the slot for another hold when no other process has asked
        for the mailbox since this one last looked; None (to be given back) otherwise."""
        extended: Lease | None = await self._run_io(self._extend, mailbox, lease)
        return extended

    def _wanted(self, mailbox: str) -> BlobClient:
        return self._container.get_blob_client(f"{digest(mailbox)}/{WANTED}")

    def _want(self, mailbox: str) -> None:
        written = self._wanted(mailbox).upload_blob(b"", overwrite=True)
        self._wanted_seen[mailbox] = written.get("etag")  # our own asking is not demand

    def _extend(self, mailbox: str, lease: Lease) -> Lease | None:
        try:
            etag: str | None = self._wanted(mailbox).get_blob_properties().etag
        except ResourceNotFoundError:
            etag = None
        if mailbox in self._wanted_seen:
            asked = etag != self._wanted_seen[mailbox]  # since we last looked
        else:
            asked = etag is not None  # at some time before our first look
        self._wanted_seen[mailbox] = etag
        if asked:
            return None
        started = time.monotonic()
        try:
            lease.client.renew()
        except HttpResponseError:  # expired and leased again by another process
            return None
        return Lease(lease.blob, lease.client, started + self._hold)

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
