"""A fake node for client-side tests: an aiohttp app served from its own thread, so
blocking clients (``tfnode.client.Client``, the bench driver) can talk to it."""

from __future__ import annotations

import asyncio
import socket
import threading

from aiohttp import web


class ThreadedApp:
    """Serves ``POST /`` with ``self._post`` and ``GET /ws`` with ``self._ws`` (defined by
    subclasses, which set their own state before calling ``super().__init__()``)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10), "fake node did not start"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/", self._post)
        app.router.add_get("/ws", self._ws)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.SockSite(self.runner, self.sock).start())
        ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
