"""Run an aiohttp application on a loopback port in a background thread."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from collections.abc import Callable

from aiohttp import web


def run_until_terminated(stop: Callable[[], None]) -> None:
    """Blocks a command-line simulator until SIGTERM or Ctrl-C, then calls `stop`."""
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stop()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class BackgroundServer:
    """Serves `app_factory()` on 127.0.0.1 from its own thread and event loop.

    The factory is called inside the server's loop, so the app may create loop-bound objects.
    """

    def __init__(self, app_factory: Callable[[], web.Application], host: str = "127.0.0.1",
                 port: int | None = None) -> None:
        self._app_factory = app_factory
        self.host = host
        self.port = port or free_port(host)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"sim-{self.port}",
                                        daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    async def _start(self) -> None:
        app = self._app_factory()
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def call(self, func: Callable[[], object]) -> object:
        """Run `func` on the server's loop (for inspecting or changing simulator state)."""
        async def _wrap() -> object:
            return func()
        return asyncio.run_coroutine_threadsafe(_wrap(), self._loop).result(timeout=30)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
