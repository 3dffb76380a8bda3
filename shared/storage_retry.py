"""In-place retries of storage calls whose connection broke (a reset, a timeout).

The SDKs retry PUTs and GETs themselves but not POSTs (a Table insert, a queue send) and give
up after a few tries; a call passed here must be safe to repeat, or must resolve a repeat
itself (the ledger reads its row back when a retried write meets its own earlier success).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from azure.core.exceptions import ServiceRequestError, ServiceResponseError

from shared.throttle import backoff_seconds

T = TypeVar("T")
CONNECTION_ERRORS = (ServiceRequestError, ServiceResponseError)


def retry_connection(call: Callable[..., T], *args: Any, attempts: int = 4,
                     **kwargs: Any) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return call(*args, **kwargs)
        except CONNECTION_ERRORS:
            if attempt == attempts:
                raise
            time.sleep(backoff_seconds(attempt, base=0.25, cap=4.0))
    raise AssertionError("unreachable")
