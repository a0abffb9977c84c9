"""What the benchmarks share: throwaway PostgreSQL and Redis, the app's settings, gunicorn, wrk."""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_services(state, pg_port, redis_port):
    """PostgreSQL 15 and Redis on their own ports (scripts/test-services.sh); returns their URLs."""
    env = {**os.environ, "SAAS_SERVICES_DIR": str(state), "TEST_PG_PORT": str(pg_port), "TEST_REDIS_PORT": str(redis_port)}
    subprocess.run(["bash", "scripts/test-services.sh", "start"], cwd=ROOT, env=env, check=True, capture_output=True)
    values = dict(re.findall(r"export (\w+)=(\S+)", (Path(state) / "env").read_text()))
    return values["TEST_DATABASE_URL"], values["TEST_REDIS_URL"]


def stop_services(state):
    env = {**os.environ, "SAAS_SERVICES_DIR": str(state)}
    subprocess.run(["bash", "scripts/test-services.sh", "stop"], cwd=ROOT, env=env, capture_output=True)


# A per-caller limit no load generator reaches: every request is still counted in Redis.
UNREACHABLE_LIMIT = "100000000 per minute"


def app_env(database_url, redis_url, bcrypt_rounds=12, rate_limits=True):
    """Production settings: JSON logs at INFO and Prometheus multiprocess metrics stay on, and
    rate limits are on, as they are by default, with a per-caller limit the load generator
    cannot reach (``rate_limits=False``: off)."""
    return {
        **os.environ,
        "APP_ENV": "production",
        "SECRET_KEY": "benchmark-secret-key-that-is-long-enough-0123456789",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "RATELIMIT_ENABLED": "true" if rate_limits else "false",
        "RATELIMIT_DEFAULT": UNREACHABLE_LIMIT,
        "BCRYPT_ROUNDS": str(bcrypt_rounds),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        "PYTHONPATH": str(ROOT),
    }


def serve(module, env, port=None, probe=None):
    """gunicorn -c gunicorn.conf.py serving ``module`` on 127.0.0.1; returns (process, url)."""
    port = port or free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", module],
        cwd=ROOT, env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "PYTHONPATH": str(ROOT)},
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    probe = probe or ("/hello" if "hello" in module else "/health/live")
    for _ in range(150):
        try:
            urlopen(url + probe, timeout=2)
            process.log = log
            return process, url
        except OSError:
            time.sleep(0.2)
    log.seek(0)
    process.kill()
    raise RuntimeError(f"{module} did not start: {log.read().decode()[-2000:]}")


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wrk(url, *, duration, connections, threads=2, headers=(), script=None, env=None):
    """One wrk run: requests/s, p50 and p99 in ms, non-2xx answers and socket errors."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script:
        command += ["-s", str(script)]
    output = subprocess.run(command + [url], capture_output=True, text=True, env=env, check=True).stdout
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "p50": _latency_ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1)),
        "p99": _latency_ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),
        "non_2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", output)) else 0,
        "errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def _latency_ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def _cpu_seconds_by_process():
    """{pid: (parent pid, CPU seconds so far)} for every process on the machine."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        # After the name: state, ppid, ... utime (14th field of the line), stime (15th).
        found[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    return found


class OtherLoad:
    """How busy the machine was with work that is not the benchmark's: the CPU that processes
    other than this one's descendants and the services under ``state`` used between ``start()``
    and ``stop()``, in cores. Another engineer's test suite on a 2-core machine shows up here."""

    def __init__(self, state):
        self.state = Path(state)

    def _ours(self, processes):
        roots = {os.getpid()}
        for pid_file in (self.state / "pgdata" / "postmaster.pid", self.state / "redis.pid"):
            try:
                roots.add(int(pid_file.read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
        ours, grew = set(roots), True
        while grew:
            grew = False
            for pid, (parent, _) in processes.items():
                if parent in ours and pid not in ours:
                    ours.add(pid)
                    grew = True
        return ours

    def start(self):
        self.started, self.before = time.monotonic(), _cpu_seconds_by_process()

    def stop(self):
        after = _cpu_seconds_by_process()
        ours = self._ours(after) | self._ours(self.before)
        used = sum(cpu - self.before.get(pid, (0, 0))[1] for pid, (_, cpu) in after.items()
                   if pid not in ours)
        return used / (time.monotonic() - self.started)
