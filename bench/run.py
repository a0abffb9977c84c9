"""Benchmark saas under gunicorn on PostgreSQL and Redis against a bare Flask baseline.

    make bench            (or: .venv/bin/python bench/run.py)

Starts throwaway PostgreSQL and Redis (scripts/test-services.sh, own ports), serves the app
and bench/hello_app.py with the same gunicorn.conf.py, drives both with wrk from loopback and
prints requests/s, p50 and p99 per endpoint, and each endpoint's ratio to the baseline measured
in the same run. Login is bcrypt-bound by design: it is compared with how many bcrypt checks per
second this machine can do at the same cost. Settings: BENCH_DURATION (s, default 10),
BENCH_CONNECTIONS (default 32), BENCH_THREADS (wrk threads, default 2), GUNICORN_WORKERS,
GUNICORN_THREADS, BCRYPT_ROUNDS (default 12), DB_POOL_SIZE.
"""
import json
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import Request, urlopen

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STATE = Path(os.environ.get("BENCH_SERVICES_DIR", "/tmp/saas-bench-services"))
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
WRK_THREADS = int(os.environ.get("BENCH_THREADS", "2"))
BCRYPT_ROUNDS = int(os.environ.get("BCRYPT_ROUNDS", "12"))
EMAIL, PASSWORD = "bench@example.com", "benchmark password 123"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_services(state=STATE, pg_port=54601, redis_port=63951):
    env = {**os.environ, "SAAS_SERVICES_DIR": str(state), "TEST_PG_PORT": str(pg_port), "TEST_REDIS_PORT": str(redis_port)}
    subprocess.run(["bash", "scripts/test-services.sh", "start"], cwd=ROOT, env=env, check=True, capture_output=True)
    values = dict(re.findall(r"export (\w+)=(\S+)", (state / "env").read_text()))
    return values["TEST_DATABASE_URL"], values["TEST_REDIS_URL"]


def stop_services(state=STATE):
    env = {**os.environ, "SAAS_SERVICES_DIR": str(state)}
    subprocess.run(["bash", "scripts/test-services.sh", "stop"], cwd=ROOT, env=env, capture_output=True)


def app_env(database_url, redis_url):
    return {
        **os.environ,
        "APP_ENV": "production",
        "SECRET_KEY": "benchmark-secret-key-that-is-long-enough-0123456789",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        # The limiter would (rightly) throttle a load generator hammering login from one address.
        "RATELIMIT_ENABLED": "false",
        "BCRYPT_ROUNDS": str(BCRYPT_ROUNDS),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
    }


def serve(module, env, port=None):
    """gunicorn with gunicorn.conf.py serving ``module`` on 127.0.0.1 (a free port by default)."""
    port = port or free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", module],
        cwd=ROOT, env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "PYTHONPATH": str(ROOT)},
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urlopen(url + ("/hello" if "hello" in module else "/health/live"), timeout=2)
            return process, url
        except OSError:
            time.sleep(0.2)
    log.seek(0)
    raise RuntimeError(f"{module} did not start: {log.read().decode()[-2000:]}")


def post_json(url, body, headers=None):
    request = Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})})
    with urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wrk(url, *, headers=(), script=None, env=None, connections=CONNECTIONS):
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{DURATION}s", "--timeout", "30s", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script:
        command += ["-s", str(script)]
    output = subprocess.run(command + [url], capture_output=True, text=True, env=env, check=True).stdout
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": _latency_ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1)),
        "p99": _latency_ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),
        "non_2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", output)) else 0,
    }


def _latency_ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def _bcrypt_checks(seconds):
    import bcrypt

    hashed = bcrypt.hashpw(b"x" * 44, bcrypt.gensalt(rounds=BCRYPT_ROUNDS))
    count, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        bcrypt.checkpw(b"x" * 44, hashed)
        count += 1
    return count


def bcrypt_limit(seconds=5):
    """bcrypt checks per second with every core busy: the ceiling for logins on this machine."""
    cores = os.cpu_count() or 1
    with multiprocessing.Pool(cores) as pool:
        return sum(pool.map(_bcrypt_checks, [seconds] * cores)) / seconds


def main():
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    database_url, redis_url = start_services()
    processes = []
    try:
        env = app_env(database_url, redis_url)
        subprocess.run([str(BIN / "flask"), "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
        app, app_url = serve("wsgi:app", env)
        processes.append(app)
        post_json(f"{app_url}/api/v1/auth/register", {"email": EMAIL, "password": PASSWORD})
        token = post_json(f"{app_url}/api/v1/auth/login", {"email": EMAIL, "password": PASSWORD})["access_token"]

        results = {}
        results["health"] = wrk(f"{app_url}/health")
        results["users/me"] = wrk(f"{app_url}/api/v1/users/me", headers=[f"Authorization: Bearer {token}"])
        results["login"] = wrk(
            f"{app_url}/api/v1/auth/login", script=ROOT / "bench" / "login.lua",
            env={**os.environ, "BENCH_EMAIL": EMAIL, "BENCH_PASSWORD": PASSWORD},
            # bcrypt-bound: a few connections saturate the cores; more would only queue.
            connections=max(2, os.cpu_count() or 1) * 2,
        )
        app.terminate()
        app.wait()

        hello, hello_url = serve("bench.hello_app:app", env)
        processes.append(hello)
        baseline = wrk(f"{hello_url}/hello")
        hello.terminate()
        hello.wait()
        bcrypt_per_second = bcrypt_limit()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        stop_services()

    workers = os.environ.get("GUNICORN_WORKERS", "default")
    threads = os.environ.get("GUNICORN_THREADS", "default")
    print(f"\nsaas benchmark: {DURATION}s per endpoint, {CONNECTIONS} connections, gunicorn workers={workers} threads={threads}, cores={os.cpu_count()}")
    print(f"{'endpoint':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}{'vs baseline':>13}")
    print(f"{'bare Flask /hello':<22}{baseline['rps']:>10.0f}{baseline['p50']:>10.2f}{baseline['p99']:>10.2f}{baseline['non_2xx']:>9}{'1.00':>13}")
    for name, result in results.items():
        ratio = result["rps"] / baseline["rps"]
        print(f"{name:<22}{result['rps']:>10.0f}{result['p50']:>10.2f}{result['p99']:>10.2f}{result['non_2xx']:>9}{ratio:>13.2f}")
    print(f"\nbcrypt (cost {BCRYPT_ROUNDS}) checks/s on all cores: {bcrypt_per_second:.1f}; "
          f"logins/s reach {results['login']['rps'] / bcrypt_per_second:.0%} of that ceiling")


if __name__ == "__main__":
    main()
