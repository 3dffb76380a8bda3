"""How long an item keeps trying after transient failures (a Graph or storage outage).

The queue's own retries (`maxDequeueCount` deliveries `visibilityTimeout` apart) last a few
minutes. Instead, a failed delivery re-queues the item with the attempt count in the message
and a visibility delay that doubles each time (`RETRY_BASE_SECONDS`, capped at
`RETRY_MAX_DELAY_SECONDS`) until `RETRY_HORIZON_SECONDS` after its first failure; only then
is it `failed` and in the poison queue. Meanwhile its outcome is `queued`, "retrying until".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from shared.messages import ItemMessage

MAX_VISIBILITY_SECONDS = 7 * 24 * 3600  # Azure Queue storage's limit for a message's delay


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: int = 30
    max_delay_seconds: int = 3600
    horizon_seconds: int = 24 * 3600

    def next(self, message: ItemMessage, now: float) -> tuple[ItemMessage, int] | None:
        """The message to queue again and its delay in seconds, or None: give up."""
        until = message.retry_until or now + self.horizon_seconds
        if now >= until:
            return None
        delay = min(self.base_seconds * 2 ** min(message.attempt, 30), self.max_delay_seconds,
                    MAX_VISIBILITY_SECONDS, until - now)
        return replace(message, attempt=message.attempt + 1, retry_until=until), \
            max(1, math.ceil(delay))
