"""A local stand-in for the Azure Functions host, running the app's registered functions.

Its bindings are the function metadata the Python worker sends the host (devhost/indexing.py):
the raw binding JSON, with %SETTING% expressions resolved from the environment.

Semantics kept from the real host:
- timer: NCRONTAB schedule from the binding (with %SETTING% resolved); also run on demand;
- blob (Event Grid source only, as on Flex Consumption): fired once per new or changed blob in
  the container, as Event Grid would deliver BlobCreated; a failing invocation is retried (5
  attempts, as Event Grid's webhook delivery) and then its event goes to
  `webjobs-blobtrigger-poison`;
- queue: messages received in batches of `batchSize`, invisible while they run, a new batch
  fetched when in-flight drops to `newBatchThreshold`, deleted on success; on failure made
  visible again after `visibilityTimeout`, and moved to `<queue>-poison` once
  `dequeueCount` reaches `maxDequeueCount`; bodies decoded per `messageEncoding`;
- http: the binding's route and methods (anything else is 404); function keys are Azure's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import logging
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import QueueClient, QueueServiceClient
from croniter import croniter

from devhost.indexing import FunctionMetadata, IndexingError, index_app

log = logging.getLogger("devhost")
ROOT = Path(__file__).resolve().parent.parent
BLOB_POISON_QUEUE = "webjobs-blobtrigger-poison"
EVENT_GRID_ATTEMPTS = 5


def _timespan(value: str) -> float:
    hours, minutes, seconds = value.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@dataclass(frozen=True)
class QueueOptions:
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 2.0
    message_encoding: str = "base64"

    @classmethod
    def from_host_json(cls, host_json: dict[str, Any]) -> QueueOptions:
        queues = host_json.get("extensions", {}).get("queues", {})
        batch = int(queues.get("batchSize", 16))
        return cls(
            batch_size=batch,
            new_batch_threshold=int(queues.get("newBatchThreshold", batch // 2)),
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
            visibility_timeout=_timespan(queues.get("visibilityTimeout", "00:00:00")),
            max_polling_interval=_timespan(queues.get("maxPollingInterval", "00:00:02")),
            message_encoding=queues.get("messageEncoding", "base64"),
        )


@dataclass
class HostStats:
    timer_runs: int = 0
    blob_invocations: int = 0
    blob_failures: int = 0
    queue_invocations: int = 0
    queue_failures: int = 0
    poisoned: int = 0
    queue_first_start: float = 0.0  # time.time() of the first queue invocation
    queue_last_end: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass
class _Registered:
    name: str
    kind: str
    binding: dict[str, Any]  # the trigger's raw binding, as the host reads it
    function: Callable[..., Any]
    param: str
    deferred: bool  # the parameter is an SDK client (BlobClient), not the content


def resolve_setting_expressions(value: str) -> str:
    """`%NAME%` -> the app setting's value, as the Functions host resolves binding paths."""
    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise KeyError(f"binding expression %{name}% names no app setting")
        return os.environ[name]
    return re.sub(r"%([A-Za-z0-9_]+)%", repl, value)


def ncrontab_next(expression: str, after: datetime) -> datetime:
    """The first time after `after` matching a 6-field NCRONTAB expression (seconds first,
    as the timer trigger reads it; croniter wants them last). ValueError if it does not parse."""
    fields = expression.split()
    if len(fields) != 6:
        raise ValueError(f"NCRONTAB needs 6 fields, got {fields}")
    try:
        fire: datetime = croniter(" ".join(fields[1:] + fields[:1]), after).get_next(datetime)
    except (KeyError, ValueError) as exc:  # croniter's errors are ValueError subclasses
        raise ValueError(f"NCRONTAB {expression!r} does not parse: {exc}") from exc
    return fire


class LocalFunctionsHost:
    def __init__(self, app: func.FunctionApp, connection_string: str,
                 host_json: dict[str, Any] | None = None, poll_interval: float = 0.25,
                 lease_seconds: float = 600.0) -> None:
        self.host_json = host_json or json.loads((ROOT / "host.json").read_text())
        self.queue_options = QueueOptions.from_host_json(self.host_json)
        self._poll_interval = poll_interval
        self._lease_seconds = lease_seconds  # how long a running message stays invisible
        self._blobs = BlobServiceClient.from_connection_string(connection_string)
        self._queues = QueueServiceClient.from_connection_string(connection_string)
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="devhost")
        self._seen_blobs: dict[tuple[str, str], str] = {}
        blobs = self.host_json.get("extensions", {}).get("blobs", {})
        self._blob_parallelism = int(blobs.get("maxDegreeOfParallelism", 4))
        self._blob_slots: asyncio.Semaphore | None = None  # made per run: loops differ
        self._blob_inflight: set[asyncio.Task[None]] = set()
        self._queue_inflight = 0
        self.stats = HostStats()
        self.functions = [_register(m) for m in index_app(app)]

    def _of_kind(self, kind: str) -> list[_Registered]:
        return [f for f in self.functions if f.kind == kind]

    # ---- timer -------------------------------------------------------------------------------

    def next_timer_fire(self, fn: _Registered, after: datetime) -> datetime:
        try:
            return ncrontab_next(resolve_setting_expressions(fn.binding["schedule"]), after)
        except ValueError as exc:
            raise ValueError(f"{fn.name}: {exc}") from exc

    def run_timer(self, name: str | None = None, past_due: bool = False) -> None:
        for fn in self._of_kind("timerTrigger"):
            if name is None or fn.name == name:
                self.stats.timer_runs += 1
                fn.function(**{fn.param: TimerRequest(past_due=past_due)})

    async def _timer_loop(self, fn: _Registered) -> None:
        while True:
            now = datetime.now(UTC)
            fire = self.next_timer_fire(fn, now)
            await asyncio.sleep((fire - now).total_seconds())
            try:
                await asyncio.get_running_loop().run_in_executor(self._pool, self.run_timer,
                                                                 fn.name)
            except Exception as exc:  # noqa: BLE001 - the host logs and waits for the next
                self._error(f"timer {fn.name}: {exc!r}")

    # ---- blob (Event Grid) -------------------------------------------------------------------

    def _blob_container(self, fn: _Registered) -> str:
        return resolve_setting_expressions(fn.binding["path"]).split("/", 1)[0]

    async def _blob_scan(self) -> int:
        """One pass over the watched containers; dispatches each new blob version once."""
        fired = 0
        for fn in self._of_kind("blobTrigger"):
            container = self._blob_container(fn)
            client = self._blobs.get_container_client(container)
            listed = await asyncio.get_running_loop().run_in_executor(
                self._pool, _names_and_etags, client)
            for name, etag in listed:
                if self._seen_blobs.get((container, name)) == etag:
                    continue
                self._seen_blobs[(container, name)] = etag
                task = asyncio.create_task(self._deliver_blob(fn, container, name))
                self._blob_inflight.add(task)
                task.add_done_callback(self._blob_inflight.discard)
                fired += 1
        return fired

    def redeliver_blobs(self) -> None:
        """Forget what was delivered: every blob fires again, as a duplicate Event Grid
        delivery (at least once) would."""
        self._seen_blobs.clear()

    async def _deliver_blob(self, fn: _Registered, container: str, name: str) -> None:
        if self._blob_slots is None:
            self._blob_slots = asyncio.Semaphore(self._blob_parallelism)
        async with self._blob_slots:  # host.json blobs.maxDegreeOfParallelism
            await self._deliver_blob_event(fn, container, name)

    async def _deliver_blob_event(self, fn: _Registered, container: str, name: str) -> None:
        for attempt in range(1, EVENT_GRID_ATTEMPTS + 1):
            self.stats.blob_invocations += 1
            try:
                argument = self._blob_argument(fn, container, name)
                await self._invoke(fn, argument)
                return
            except Exception as exc:  # noqa: BLE001 - the host logs and retries
                self.stats.blob_failures += 1
                self._error(f"blob {fn.name} {container}/{name} attempt {attempt}: {exc!r}")
                await asyncio.sleep(min(2 ** attempt * 0.1, 2.0))
        poison = self._queues.get_queue_client(BLOB_POISON_QUEUE)
        _create_queue(poison)
        poison.send_message(base64.b64encode(json.dumps(
            {"FunctionId": fn.name, "BlobType": "BlockBlob", "ContainerName": container,
             "BlobName": name}).encode()).decode())
        self.stats.poisoned += 1

    def _blob_argument(self, fn: _Registered, container: str, name: str) -> Any:
        client = self._blobs.get_blob_client(container, name)
        if fn.deferred:
            return client  # what the SDK-type binding hands the function
        data = client.download_blob().readall()
        return func.blob.InputStream(name=f"{container}/{name}", data=data, length=len(data))

    # ---- queue -------------------------------------------------------------------------------

    async def _queue_loop(self, fn: _Registered) -> None:
        options = self.queue_options
        name = resolve_setting_expressions(fn.binding["queueName"])
        queue = self._queues.get_queue_client(name)
        poison = self._queues.get_queue_client(f"{name}-poison")
        _create_queue(queue)
        loop = asyncio.get_running_loop()
        idle = self._poll_interval
        running: set[asyncio.Task[None]] = set()
        while True:
            if len(running) > options.new_batch_threshold:
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                continue
            batch = await loop.run_in_executor(self._pool, lambda: list(queue.receive_messages(
                messages_per_page=options.batch_size, max_messages=options.batch_size,
                visibility_timeout=int(self._lease_seconds))))
            if not batch:
                await asyncio.sleep(idle)
                idle = min(idle * 2, options.max_polling_interval)
                continue
            idle = self._poll_interval
            for message in batch:
                task = asyncio.create_task(self._deliver_message(fn, queue, poison, message))
                running.add(task)
                task.add_done_callback(running.discard)

    async def _deliver_message(self, fn: _Registered, queue: QueueClient, poison: QueueClient,
                               message: Any) -> None:
        options = self.queue_options
        loop = asyncio.get_running_loop()
        self._queue_inflight += 1
        self.stats.queue_invocations += 1
        self.stats.queue_first_start = self.stats.queue_first_start or time.time()
        try:
            body = message.content
            raw = base64.b64decode(body) if options.message_encoding == "base64" else \
                body.encode("utf-8")
            argument = QueueMessage(
                id=message.id, body=raw, dequeue_count=message.dequeue_count,
                expiration_time=message.expires_on, insertion_time=message.inserted_on,
                time_next_visible=message.next_visible_on, pop_receipt=message.pop_receipt)
            await self._invoke(fn, argument)
        except Exception as exc:  # noqa: BLE001 - the host logs, then retries or poisons
            self.stats.queue_failures += 1
            self._error(f"queue {fn.name} message {message.id} "
                        f"(dequeue {message.dequeue_count}): {exc!r}")
            if message.dequeue_count >= options.max_dequeue_count:
                await loop.run_in_executor(self._pool, self._poison, queue, poison, message)
            else:
                await loop.run_in_executor(self._pool, lambda: queue.update_message(
                    message, visibility_timeout=int(options.visibility_timeout)))
        else:
            await loop.run_in_executor(self._pool, queue.delete_message, message)
        finally:
            self._queue_inflight -= 1
            self.stats.queue_last_end = time.time()

    def _poison(self, queue: QueueClient, poison: QueueClient, message: Any) -> None:
        _create_queue(poison)
        poison.send_message(message.content)  # still encoded, as the host copies it
        queue.delete_message(message)
        self.stats.poisoned += 1

    # ---- http --------------------------------------------------------------------------------

    def call_http(self, route: str, method: str = "POST", body: bytes = b"",
                  params: dict[str, str] | None = None) -> func.HttpResponse:
        """Invokes the HTTP function whose route is `route` as the host would: route and method
        must match the binding, or 404 (the key check is Azure's)."""
        fn = next((f for f in self._of_kind("httpTrigger")
                   if f.binding.get("route", f.name) == route
                   and method.upper() in [m.upper() for m in f.binding.get("methods") or
                                          [method]]), None)
        if fn is None:
            return func.HttpResponse(status_code=404)
        request = func.HttpRequest(method=method.upper(), url=f"http://localhost/api/{route}",
                                   body=body, params=params or {},
                                   headers={"Content-Type": "application/json"})
        response = fn.function(**{fn.param: request})
        assert isinstance(response, func.HttpResponse)
        return response

    # ---- running -----------------------------------------------------------------------------

    async def _invoke(self, fn: _Registered, argument: Any) -> None:
        if inspect.iscoroutinefunction(fn.function):
            await fn.function(**{fn.param: argument})
        else:
            await asyncio.get_running_loop().run_in_executor(
                self._pool, lambda: fn.function(**{fn.param: argument}))

    async def run(self, until: Callable[[], bool] | None = None, timeout: float = 600.0,
                  timers: bool = True, blobs: bool = True) -> None:
        """Runs the listeners until `until()` is true (checked between polls) or timeout.
        `blobs=False`: a worker process that only drains the queues (devhost.workers)."""
        self._blob_slots = asyncio.Semaphore(self._blob_parallelism)
        tasks = [asyncio.create_task(self._queue_loop(f)) for f in self._of_kind("queueTrigger")]
        if timers:
            tasks += [asyncio.create_task(self._timer_loop(f))
                      for f in self._of_kind("timerTrigger")]
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if blobs:
                    await self._blob_scan()
                for task in tasks:
                    if task.done() and task.exception():
                        raise task.exception()  # type: ignore[misc]
                if until is not None and until():
                    return
                await asyncio.sleep(self._poll_interval)
            raise TimeoutError(f"local host: not done within {timeout:.0f}s")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_until_idle(self, timeout: float = 600.0, settle: float = 1.0) -> None:
        """Runs until every blob event is handled and the watched queues stay empty."""
        queue_names = [resolve_setting_expressions(f.binding["queueName"])
                       for f in self._of_kind("queueTrigger")]
        idle_since: list[float] = []

        def idle() -> bool:
            busy = bool(self._blob_inflight) or self._queue_inflight > 0 or any(
                self._queue_depth(n) > 0 for n in queue_names)
            if busy:
                idle_since.clear()
                return False
            if not idle_since:
                idle_since.append(time.monotonic())
            return time.monotonic() - idle_since[0] >= settle

        await self.run(until=idle, timeout=timeout, timers=False)

    def _queue_depth(self, name: str) -> int:
        props = self._queues.get_queue_client(name).get_queue_properties()
        return int(props.approximate_message_count or 0)

    def _error(self, text: str) -> None:
        self.stats.errors.append(text)
        log.warning(text)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _register(metadata: FunctionMetadata) -> _Registered:
    trigger = metadata.trigger
    if trigger["type"] == "blobTrigger" and trigger.get("source") != "EventGrid":
        raise IndexingError(f"{metadata.name}: Flex Consumption runs blob triggers only with "
                            f"source=EventGrid, this one polls ({trigger.get('source')!r})")
    return _Registered(metadata.name, trigger["type"], trigger, metadata.function,
                       trigger["name"], metadata.deferred)


def _names_and_etags(container: ContainerClient) -> list[tuple[str, str]]:
    return [(blob.name, blob.etag) for blob in container.list_blobs()]


def _create_queue(queue: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
