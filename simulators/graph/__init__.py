"""Microsoft Graph v1.0 simulator: the mail endpoints the connector uses, with Graph's rules.

    sim = GraphSimulator(users=[SimUser(id=..., user_principal_name=...)], token="sim-token")
    sim.start()           # two loopback listeners: the Graph API and the upload host
    sim.base_url          # "http://127.0.0.1:PORT/v1.0"
    ...
    sim.stop()

Inspection helpers run on the server's event loop, so they are safe while requests are served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from aiohttp import web

from .._server import BackgroundServer, free_port
from .app import api_app, upload_app
from .faults import FaultPlan
from .service import GraphService, RequestRecord
from .state import SimUser

__all__ = ["FaultPlan", "GraphSimulator", "RequestRecord", "SimUser"]

T = TypeVar("T")


class GraphSimulator:
    """A simulated Graph tenant served on 127.0.0.1 (API listener plus upload listener)."""

    def __init__(self, users: Iterable[SimUser] = (), token: str = "sim-token",  # noqa: S107
                 latency: float = 0.0, faults: FaultPlan | None = None, seed: int = 0,
                 port: int | None = None, upload_port: int | None = None) -> None:
        self.token = token
        self._upload_port = upload_port or free_port()
        self._service = GraphService(list(users), token, latency, faults or FaultPlan(), seed,
                                     f"http://127.0.0.1:{self._upload_port}")
        self._server = BackgroundServer(self._build, port=port)
        self._started = False

    def _build(self) -> web.Application:
        app = api_app(self._service)
        runner = web.AppRunner(upload_app(self._service), access_log=None,
                               handler_cancellation=True)

        async def start_upload(_: web.Application) -> None:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self._upload_port, backlog=1024).start()

        async def stop_upload(_: web.Application) -> None:
            await runner.cleanup()

        app.on_startup.append(start_upload)
        app.on_cleanup.append(stop_upload)
        return app

    def start(self) -> GraphSimulator:
        self._server.start()
        self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._server.stop()
            self._started = False

    def __enter__(self) -> GraphSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """What the connector's GRAPH_BASE_URL is set to, e.g. http://127.0.0.1:PORT/v1.0."""
        return f"{self._server.url}/v1.0"

    @property
    def upload_base_url(self) -> str:
        """Origin of the upload listener, the host of every `uploadUrl`."""
        return self._service.upload_origin

    def _inspect(self, func: Callable[[], T]) -> T:
        if self._started:
            return cast(T, self._server.call(func))
        return func()

    def messages(self, user: str) -> list[dict[str, Any]]:
        """Stored messages of a user (id or UPN), all folders, in creation order."""
        return self._inspect(lambda: self._service.messages_of(user))

    def folders(self, user: str) -> list[dict[str, Any]]:
        return self._inspect(lambda: self._service.folders_of(user))

    @property
    def request_log(self) -> list[RequestRecord]:
        return self._inspect(lambda: list(self._service.log))

    def max_concurrency(self, user: str) -> int:
        """Highest number of simultaneously admitted requests seen for the user's mailbox."""
        def peak() -> int:
            found = self._service.directory.find(user)
            return self._service.throttle.peak(found.id) if found else 0
        return self._inspect(peak)

    def stats(self) -> dict[str, Any]:
        return self._inspect(self._service.stats)

    def add_user(self, user: SimUser) -> None:
        self._inspect(lambda: self._service.directory.add(user))

    def set_faults(self, plan: FaultPlan) -> None:
        def apply() -> None:
            self._service.faults.plan = plan
        self._inspect(apply)
