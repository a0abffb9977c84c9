"""Real processes for tests about serving: gunicorn and rq workers, on loopback."""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import requests

from saas.core.queue import QUEUES
from tests.conftest import REDIS_URL, ROOT, child_env

BIN = Path(sys.executable).parent


def free_port():
    """A loopback port free at the moment of asking. Another process may take it before the
    server told to use it binds it: only for servers that cannot be handed a socket (nginx,
    `make run`); gunicorn gets its socket from ``gunicorn()``, and ``refusing_port()`` holds one
    nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening_socket():
    """A socket bound to a free loopback port and listening: the port is taken from the start."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@contextlib.contextmanager
def refusing_port():
    """A loopback port that refuses connections while the block runs: bound here and never
    listened on, so no other process can start listening there meanwhile (a port only free at
    the moment of asking may be someone else's by the time it is used)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class Server:
    def __init__(self, url, process):
        self.url = url
        self.process = process

    def __str__(self):
        return self.url


@contextlib.contextmanager
def gunicorn(**env):
    """Serve wsgi:app under gunicorn with gunicorn.conf.py; yields a Server (str() is its URL).

    gunicorn is handed a socket already listening on a free port (`GUNICORN_BIND=fd://N`): no
    other process can take the port between choosing it and serving on it, so the health check
    below can only ever reach this gunicorn."""
    with listening_socket() as sock:
        port = sock.getsockname()[1]
        log_file = tempfile.TemporaryFile()
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=child_env(**{"GUNICORN_WORKERS": "2", "GUNICORN_THREADS": "4", **env,
                             "GUNICORN_BIND": f"fd://{sock.fileno()}"}),
            pass_fds=(sock.fileno(),),
            # A file, not a pipe: nobody drains a pipe while the test runs, and a full one blocks gunicorn.
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    process.log_file = log_file
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(base_url, process)
        yield Server(base_url, process)
    finally:
        stop_process(process)


def process_output(process):
    process.log_file.seek(0)
    return process.log_file.read().decode(errors="replace")


def stop_process(process, timeout=30):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_until_serving(base_url, process, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {process_output(process)[-4000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{base_url}/health/live", timeout=5).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not start serving in time")


def rq_worker_command(*extra, redis_url=None):
    """The plain `rq worker` CLI with the project's worker class, as the docs run it (docs/operations/index.md)."""
    url = redis_url or REDIS_URL
    return [
        str(BIN / "rq"), "worker", "--with-scheduler", "--worker-class", "saas.worker.Worker",
        "--url", url, *extra, *QUEUES,
    ]


def worker_command(*extra):
    """What `make worker` runs."""
    return [sys.executable, "-m", "saas.worker", *extra]


def start_rq_worker(**env):
    """The worker as `make worker` starts it, in the background."""
    log_file = tempfile.TemporaryFile()
    process = subprocess.Popen(
        worker_command(), cwd=ROOT, env=child_env(**env), stdout=log_file, stderr=subprocess.STDOUT,
    )
    process.log_file = log_file
    return process


def run_rq_worker_burst(plain_cli=False, **env):
    """Run the worker until the queues are empty: as `make worker` runs it, or with `plain_cli`
    as the plain `rq worker` CLI with the project's worker class (the docs' other way)."""
    command = rq_worker_command("--burst", redis_url=env.get("REDIS_URL")) if plain_cli else worker_command("--burst")
    return subprocess.run(command, cwd=ROOT, env=child_env(**env), capture_output=True, text=True, timeout=120)


def assert_json_error(response, code, status):
    assert response.status_code == code, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert (body["code"], body["status"]) == (code, status)
    assert body["message"]


def raw_request(port, data, timeout=5):
    """Send raw bytes, return the whole answer (nginx and gunicorn close after their own errors)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        with contextlib.suppress(socket.timeout, ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode(), body


def port_of(url):
    return int(url.rsplit(":", 1)[1])


@contextlib.contextmanager
def own_redis():
    """A Redis server of this test's own, which it may stop and start again at the same address:
    a Unix socket in a directory of its own, which no other process can take while the server is
    away (a TCP port could be)."""
    directory = tempfile.TemporaryDirectory(prefix="saas-redis-")
    path = Path(directory.name) / "redis.sock"

    def start():
        process = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", str(path), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(unix_socket_path=str(path))
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    return process
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    server = {"process": start()}

    class Handle:
        url = f"unix://{path}?db=0"

        def stop(self):
            stop_process(server["process"])

        def start(self):
            server["process"] = start()

    try:
        yield Handle()
    finally:
        stop_process(server["process"])
        directory.cleanup()
