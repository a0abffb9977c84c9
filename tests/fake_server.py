"""What the fake provider servers share: a threaded WSGI server on a free loopback port.

Subclasses implement ``_wsgi`` and extend ``reset`` (calling it first, under the lock). ``_bump_generation`` (called on reset and stop)
wakes requests that wait in a "slow" mode, so a late answer never leaks into the next test; ``_act_out_outage`` plays the
"unavailable" and "slow" modes the same way for every fake.
"""
from __future__ import annotations

import socket
import threading

from werkzeug.serving import WSGIRequestHandler, make_server


class QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        pass  # one access-log line per call drowns test output; errors still log


class LoopbackServer:
    NAME = "fake-server"
    URL_SUFFIX = ""
    REQUEST_HANDLER = QuietRequestHandler

    def __init__(self):
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._generation = 0
        self._server = None
        self._thread = None
        self.url = ""

    def start(self):
        """Serve on 127.0.0.1 on a free port in a daemon thread; returns self."""
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=self.REQUEST_HANDLER)
        self.url = f"http://127.0.0.1:{self._server.server_port}{self.URL_SUFFIX}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.NAME, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._bump_generation()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        """Outage simulation off: mode "ok", delay back to 10 s; waiting "slow" requests drop."""
        with self._lock:
            self._bump_generation()
            self.mode = "ok"
            self.delay = 10.0

    def _bump_generation(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def _act_out_outage(self, environ, mode: str, generation: int) -> None:
        """Mode "unavailable": close the connection without an answer. Mode "slow": hold the answer ``delay``
        seconds, and drop it instead when reset() or stop() happened meanwhile. Other modes: return at once."""
        if mode == "unavailable":
            self._drop_connection(environ)
        if mode == "slow":
            with self._changed:
                self._changed.wait_for(lambda: self._generation != generation, timeout=self.delay)
            if self._generation != generation:
                self._drop_connection(environ)

    def _drop_connection(self, environ):
        environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
        # werkzeug treats ConnectionError as "client went away" and stays quiet.
        raise ConnectionAbortedError(f"{self.NAME} dropped the connection on purpose")

    def _wsgi(self, environ, start_response):
        raise NotImplementedError
