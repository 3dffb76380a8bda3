"""Outlook's per-mailbox limits for one application: concurrency, request rate, upload volume.

Documented limits (per app and mailbox): 4 concurrent requests, 10,000 requests per 10 minutes,
150 MB uploaded (PATCH, POST, PUT bodies) per 5 minutes. An excess request gets 429
`ApplicationThrottled` with `Retry-After`.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from .errors import GraphError

MAX_CONCURRENT = 4
WINDOW_REQUESTS = 10_000
WINDOW_SECONDS = 600.0
UPLOAD_BYTES = 150 * 1024 * 1024
UPLOAD_WINDOW_SECONDS = 300.0


def throttled(message: str, retry_after: int) -> GraphError:
    return GraphError(429, "ApplicationThrottled", message,
                      headers={"Retry-After": str(max(1, retry_after))})


@dataclass
class _MailboxUsage:
    in_flight: int = 0
    peak: int = 0


class MailboxThrottle:
    """Admission control per mailbox (the caller keys by user id). Not thread-safe: used only on
    the simulator's event loop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 max_concurrent: int = MAX_CONCURRENT) -> None:
        self._clock = clock
        self._max_concurrent = max_concurrent
        self._usage: dict[str, _MailboxUsage] = defaultdict(_MailboxUsage)
        self._requests: dict[str, deque[float]] = defaultdict(deque)
        self._uploads: dict[str, deque[tuple[float, int]]] = defaultdict(deque)

    def enter(self, mailbox: str, upload_bytes: int, retry_after: int) -> None:
        """Admit one request or raise 429; an admitted request must call `leave` when done."""
        usage = self._usage[mailbox]
        if usage.in_flight >= self._max_concurrent:
            raise throttled("Application is over its MailboxConcurrency limit.", retry_after)
        now = self._clock()
        requests = self._requests[mailbox]
        while requests and requests[0] <= now - WINDOW_SECONDS:
            requests.popleft()
        if len(requests) >= WINDOW_REQUESTS:
            raise throttled("Application is over its MailboxLimit.",
                            math.ceil(requests[0] + WINDOW_SECONDS - now))
        if upload_bytes:
            uploads = self._uploads[mailbox]
            while uploads and uploads[0][0] <= now - UPLOAD_WINDOW_SECONDS:
                uploads.popleft()
            if sum(n for _, n in uploads) + upload_bytes > UPLOAD_BYTES:
                raise throttled("Application is over its MailboxUploadLimit.",
                                math.ceil(uploads[0][0] + UPLOAD_WINDOW_SECONDS - now)
                                if uploads else retry_after)
            uploads.append((now, upload_bytes))
        requests.append(now)
        usage.in_flight += 1
        usage.peak = max(usage.peak, usage.in_flight)

    def leave(self, mailbox: str) -> None:
        self._usage[mailbox].in_flight -= 1

    def peak(self, mailbox: str) -> int:
        """The highest number of simultaneously admitted requests seen for the mailbox."""
        return self._usage[mailbox].peak if mailbox in self._usage else 0
