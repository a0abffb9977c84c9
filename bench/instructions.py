"""Instructions per ``GET /api/v1/users/me``, saas against the lean floor, counted by valgrind.

On a shared 2-core machine a figure in req/s moves by up to 2x between runs (bench/RESULTS.md);
the number of instructions a request costs the serving process does not. This counts them:
the WSGI app called directly in one process (no server, no client), under valgrind's
callgrind, once after 100 warm-up requests and once after K more; the difference over K is the
figure. Waiting on PostgreSQL and Redis costs no instruction; their clients' work does. Each
system in each mode (rate limits on and off, as in ``make bench``) is counted, and saas is
given as a ratio to the floor's count.

usage: ``make bench-instructions`` (valgrind from apt as root when missing); BENCH_K (200).
A run takes a few minutes: valgrind runs Python about fifty times slower.
"""
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BIN, app_env, start_services, stop_services  # noqa: E402

STATE = Path(tempfile.gettempdir()) / "saas-bench-instructions"
K = int(os.environ.get("BENCH_K", "200"))
WARM_UP = 100


def requests_in_process(which, token, count):
    """``count`` requests of /users/me to ``which`` ("saas" or "floor"), in this process."""
    sys.stdout = open(os.devnull, "w")  # the JSON log lines
    if which == "floor":
        from bench.floor_app import app
    else:
        from wsgi import app
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/v1/users/me", "QUERY_STRING": "",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.multithread": True,
               "wsgi.multiprocess": True, "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1",
               "HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_HOST": "127.0.0.1:8000"}
    statuses = []
    for _ in range(count):
        body = app({**environ, "wsgi.input": io.BytesIO(b"")}, lambda status, headers, exc_info=None: statuses.append(status))
        b"".join(body)
        getattr(body, "close", lambda: None)()
    if not statuses[-1].startswith("200"):
        raise SystemExit(f"{which}: {statuses[-1]}")


def counted(which, env, token, requests):
    """Instructions valgrind counts for a process serving ``requests`` requests."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
               "--serve", which, token, str(requests)]
    output = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stderr
    return int(re.search(r"Collected : (\d+)", output).group(1))


def access_token(env):
    """A registered user's access token, through the app itself."""
    script = (
        "import sys, os; sys.stdout = open(os.devnull, 'w')\n"
        "from wsgi import app\n"
        "client = app.test_client()\n"
        "account = {'email': 'instructions@example.com', 'password': 'Bench-password-123'}\n"
        "client.post('/api/v1/auth/register', json=account)\n"
        "sys.stderr.write(client.post('/api/v1/auth/login', json=account).get_json()['access_token'])\n"
    )
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True).stderr.strip().splitlines()[-1]


def main():
    database_url, redis_url = start_services(STATE, 54350, 63820)
    figures = {}
    try:
        for mode, limits in (("on", True), ("off", False)):
            env = {**app_env(database_url, redis_url, 4, rate_limits=limits),
                   "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp()}
            subprocess.run([str(BIN / "flask"), "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
            token = access_token(env)
            for which in ("floor", "saas"):
                before = counted(which, env, token, WARM_UP)
                after = counted(which, env, token, WARM_UP + K)
                figures[which, mode] = (after - before) // K
                print(f"{which}, limits {mode}: {figures[which, mode]:,} instructions a request", flush=True)
    finally:
        stop_services(STATE)
    print(f"\nGET /api/v1/users/me, in one process (valgrind callgrind, {K} requests after {WARM_UP})")
    for mode in ("on", "off"):
        floor, saas = figures["floor", mode], figures["saas", mode]
        print(f"limits {mode:<3}: floor {floor:,}, saas {saas:,} instructions a request: "
              f"the floor's count is {floor / saas:.2f}x saas's")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        requests_in_process(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
