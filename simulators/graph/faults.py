"""Fault injection: transient failures the real service produces, drawn from a seeded RNG."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from .errors import GraphError
from .throttle import throttled


@dataclass(frozen=True)
class FaultPlan:
    """Probabilities of faults on mail endpoints, for requests whose method is in
    `only_methods`. A throttle or unavailable fault answers without doing anything; a gateway
    timeout fault does the work and then answers 504 (Graph can time out while the write
    completes)."""

    throttle_ratio: float = 0.0
    unavailable_ratio: float = 0.0
    gateway_timeout_after_write_ratio: float = 0.0
    retry_after_seconds: int = 1
    only_methods: tuple[str, ...] = ("POST",)


class Fault(Enum):
    THROTTLE = "429"
    UNAVAILABLE = "503"
    TIMEOUT_AFTER_WRITE = "504"


class FaultInjector:
    def __init__(self, plan: FaultPlan, seed: int) -> None:
        self.plan = plan
        self._rng = random.Random(seed)

    def draw(self, method: str) -> Fault | None:
        plan = self.plan
        if method.upper() not in {m.upper() for m in plan.only_methods}:
            return None
        roll = self._rng.random()
        for fault, ratio in ((Fault.THROTTLE, plan.throttle_ratio),
                             (Fault.UNAVAILABLE, plan.unavailable_ratio),
                             (Fault.TIMEOUT_AFTER_WRITE, plan.gateway_timeout_after_write_ratio)):
            if roll < ratio:
                return fault
            roll -= ratio
        return None

    def error(self, fault: Fault) -> GraphError:
        retry_after = self.plan.retry_after_seconds
        if fault is Fault.THROTTLE:
            return throttled("Application is over its MailboxConcurrency limit.", retry_after)
        if fault is Fault.UNAVAILABLE:
            return GraphError(503, "ServiceUnavailable",
                              "The service is temporarily unavailable. Retry the request later.",
                              headers={"Retry-After": str(retry_after)})
        return GraphError(504, "GatewayTimeout",
                          "The gateway did not receive a timely response from the service.")
