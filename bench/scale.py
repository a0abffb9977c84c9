"""Scale-out check: three gunicorn instances behind a load balancer, two RQ workers, one
PostgreSQL and one Redis, all on this machine.

    make bench-scale      (or: .venv/bin/python bench/scale.py)

Shows, under concurrent load, the guarantees that let the app run on many instances at once,
prints a summary table and exits non-zero if one fails:

- refresh race: one refresh token presented concurrently to all instances -> exactly one 200,
  every other attempt 401;
- quota: a free-plan user hammering POST /api/v1/ai/chat on all instances never uses more than
  its PLAN_QUOTAS quota, and never has more than AI_MAX_CONCURRENT calls at the provider at once
  (each call is held HOLD_SECONDS there, so the cap is reached; a client told "too many in
  progress" or "busy" waits and tries again, as a real one would);
- rate limits: failed logins for one account spread over the instances are refused (429) from
  attempt RATELIMIT_LOGIN_ACCOUNT + 1 on, exactly as on one instance (counters in Redis);
- jobs: AI jobs queued through the instances (spread over users, each under AI_MAX_CONCURRENT)
  each run exactly once on the two workers (`python -m saas.worker`, as `make worker` runs it);
- rolling restart: each instance in turn gets SIGTERM and is replaced while clients keep
  calling through the load balancer -> no non-2xx answer and no connection error.

The load balancer is nginx (Debian package) with passive health checks: a request that cannot
reach an instance is retried on the next. The AI provider is the test suite's fake
(tests/fake_openai.py), in process. PostgreSQL and Redis are started like bench/run.py does, on
their own ports. Settings: SCALE_CLIENTS (threads per load phase, default 16), GUNICORN_WORKERS
(per instance, default 1), GUNICORN_THREADS (default 8), BCRYPT_ROUNDS (default 12).

Controls, to see the checks fail when a guarantee is taken away (bench/SCALE.md):
    bench/scale.py --control memory-rate-limits   RATELIMIT_STORAGE_URI=memory:// (counters per process)
    bench/scale.py --control no-retry             the balancer's proxy_next_upstream off
"""
import argparse
import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
import requests  # noqa: E402
from rq.job import Job  # noqa: E402

from bench.common import BIN, ROOT, app_env, free_port, serve, start_services, stop_services  # noqa: E402
from saas.ai.service import CHAT_JOB  # noqa: E402
from saas.core.queue import job_id  # noqa: E402
from tests.fake_openai import API_KEY as FAKE_OPENAI_KEY, FakeOpenAI  # noqa: E402

STATE = Path(os.environ.get("BENCH_SCALE_SERVICES_DIR", "/tmp/saas-bench-scale-services"))
# Its own PostgreSQL and Redis ports, clear of the test services other worktrees run.
PG_PORT, REDIS_PORT = 54611, 63961
INSTANCES = 3
CLIENTS = int(os.environ.get("SCALE_CLIENTS", "16"))
PASSWORD = "scale-out password 123"
FREE_QUOTA = 3000
MAX_TOKENS = 100
LOGIN_ACCOUNT_LIMIT = "10 per 15 minutes"
AI_MAX_CONCURRENT = 4  # the default: a user's chats and jobs in progress at once
HOLD_SECONDS = 0.1  # how long the provider takes over each call
JOBS = 15
JOB_USERS = 5  # 3 jobs each: under AI_MAX_CONCURRENT, so every job is accepted
CONTROLS = {
    "memory-rate-limits": "RATELIMIT_STORAGE_URI=memory:// (rate-limit counters per process)",
    "no-retry": "the balancer's proxy_next_upstream off (no retry on another instance)",
}

LB_CONF = """
worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path client-body;
    proxy_temp_path proxy;
    upstream saas {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://saas;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
            # An instance that refuses or drops the connection: try the next one. A request that
            # was already sent is retried only when it is idempotent (nginx's rule).
            proxy_next_upstream {next_upstream};
            proxy_next_upstream_tries {tries};
        }}
    }}
}}
"""


class Cluster:
    """The processes of one run; ``stop()`` ends them all."""

    def __init__(self, env, next_upstream="error timeout http_502"):
        self.env = env
        self.next_upstream = next_upstream
        self.ports = [free_port() for _ in range(INSTANCES)]
        self.instances = [None] * INSTANCES
        self.workers = []
        self.lb = None
        self.lb_dir = None

    def urls(self):
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def start_instance(self, index):
        process, _ = serve("wsgi:app", self.env, port=self.ports[index])
        self.instances[index] = process

    def start_workers(self, count=2):
        command = WORKER_COMMAND
        for _ in range(count):
            self.workers.append(subprocess.Popen(
                command, cwd=ROOT, env={**self.env, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        return command

    def start_lb(self):
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.access(binary, os.X_OK):
            sys.exit("nginx is not installed: apt-get install nginx (make bench-scale does when root)")
        self.lb_dir = Path(tempfile.mkdtemp(prefix="saas-scale-lb-"))
        self.lb_dir.chmod(0o755)
        port = free_port()
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=1s;" for p in self.ports)
        (self.lb_dir / "nginx.conf").write_text(
            LB_CONF.format(servers=servers, port=port, tries=INSTANCES, next_upstream=self.next_upstream)
        )
        self.lb = subprocess.Popen(
            [binary, "-e", "stderr", "-p", f"{self.lb_dir}/", "-c", str(self.lb_dir / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/health/live", timeout=2).status_code == 200:
                    return url
            time.sleep(0.1)
        sys.exit("the load balancer did not start")

    def stop(self):
        for process in [*self.instances, *self.workers, self.lb]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.instances, *self.workers, self.lb]:
            if process is not None:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self.lb_dir:
            shutil.rmtree(self.lb_dir, ignore_errors=True)


# The worker as `make worker` runs it (reads REDIS_URL; queues high, default, low; the scheduler).
WORKER_COMMAND = [sys.executable, "-m", "saas.worker"]


class CountingProvider(FakeOpenAI):
    """The test suite's fake provider, holding each call HOLD_SECONDS and counting the calls in
    flight at once (the most since ``start_counting``)."""

    def __init__(self):
        super().__init__()
        self.in_flight = self.most_in_flight = 0

    def start_counting(self):
        with self._lock:
            self.most_in_flight = self.in_flight

    def _answer(self, request, body, mode):
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(HOLD_SECONDS)
            return super()._answer(request, body, mode)
        finally:
            with self._lock:
                self.in_flight -= 1


def register_and_login(base_url, email):
    requests.post(f"{base_url}/api/v1/auth/register", json={"email": email, "password": PASSWORD}, timeout=30)
    response = requests.post(f"{base_url}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=30)
    response.raise_for_status()
    return response.json()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@contextlib.contextmanager
def background_load(lb, token, threads=4):
    """Keep the instances busy with authenticated reads through the load balancer."""
    stop, counts, lock = threading.Event(), collections.Counter(), threading.Lock()

    def loop():
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    status = session.get(f"{lb}/api/v1/users/me", headers=bearer(token), timeout=30).status_code
                except requests.RequestException:
                    status = "error"
                with lock:
                    counts[status] += 1

    pool = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    try:
        yield counts
    finally:
        stop.set()
        for thread in pool:
            thread.join()


def refresh_race(urls):
    refresh_token = register_and_login(urls[0], "race@example.com")["refresh_token"]
    attempts = 10 * len(urls)
    barrier = threading.Barrier(attempts)

    def attempt(number):
        url = urls[number % len(urls)]
        barrier.wait()
        return url, requests.post(f"{url}/api/v1/auth/refresh", json={"refresh_token": refresh_token}, timeout=60)

    with ThreadPoolExecutor(attempts) as pool:
        answers = list(pool.map(attempt, range(attempts)))
    codes = collections.Counter(response.status_code for _, response in answers)
    winners = [(url, response.json()) for url, response in answers if response.status_code == 200]
    ok = codes[200] == 1 and codes[401] == attempts - 1
    figures = f"{attempts} concurrent refreshes over {len(urls)} instances: {dict(sorted(codes.items()))}"
    if len(winners) == 1:
        # The losers presented a retired token: treated as theft, the whole family is revoked.
        again = requests.post(f"{urls[0]}/api/v1/auth/refresh", json={"refresh_token": winners[0][1]["refresh_token"]},
                              timeout=30).status_code
        figures += f"; the winner's new refresh token then gets {again} (family revoked as reuse)"
    return "refresh race: exactly one wins", ok, figures


def quota(urls, fake):
    """Returns two rows: the monthly quota, and the calls in progress at once."""
    token = register_and_login(urls[0], "free-user@example.com")["access_token"]
    calls = 8 * CLIENTS
    body = {"messages": [{"role": "user", "content": "Count"}], "max_tokens": MAX_TOKENS}
    retried, lock = collections.Counter(), threading.Lock()

    def call(number):
        url = urls[number % len(urls)]
        while True:
            response = requests.post(f"{url}/api/v1/ai/chat", json=body, headers=bearer(token), timeout=60)
            if response.status_code == 429 and "in_progress" in (response.json().get("errors") or {}):
                reason = "429 in progress"  # AI_MAX_CONCURRENT: wait for one to end
            elif response.status_code == 503 and response.headers.get("Retry-After"):
                reason = "503 busy"  # this instance's bulkhead (AI_MAX_CONCURRENT_CALLS) is full
            else:
                return "429 quota" if response.status_code == 429 else response.status_code
            with lock:
                retried[reason] += 1
            time.sleep(0.05)

    fake.start_counting()
    with ThreadPoolExecutor(CLIENTS) as pool:
        codes = collections.Counter(pool.map(call, range(calls)))
    most_in_flight = fake.most_in_flight
    usage = requests.get(f"{urls[0]}/api/v1/usage", headers=bearer(token), timeout=30).json()
    ok = usage["used"] <= usage["quota"] == FREE_QUOTA and usage["reserved"] == 0 and codes[200] > 0 \
        and codes["429 quota"] > 0 and set(codes) <= {200, "429 quota"}
    figures = (f"{calls} calls, {CLIENTS} at a time over {len(urls)} instances: {dict(sorted(codes.items(), key=str))}; "
               f"used {usage['used']} of {usage['quota']} tokens, {usage['reserved']} still reserved")
    capped = 0 < most_in_flight <= AI_MAX_CONCURRENT
    cap_figures = (f"at most {most_in_flight} of the user's calls at the provider at once (AI_MAX_CONCURRENT="
                   f"{AI_MAX_CONCURRENT}; the per-process bulkheads alone would let {len(urls)} x 3 through); "
                   f"refused and retried: {dict(sorted(retried.items())) or 'none'}")
    return [("quota: never exceeded", ok, figures),
            (f"calls in progress: at most {AI_MAX_CONCURRENT} per user", capped, cap_figures)]


def login_rate_limit(urls, limit):
    register_and_login(urls[0], "guessed@example.com")
    codes = []
    for attempt in range(limit + 3):
        url = urls[attempt % len(urls)]
        codes.append(requests.post(f"{url}/api/v1/auth/login", json={"email": "guessed@example.com", "password": "wrong guess"},
                                   timeout=30).status_code)
    right = requests.post(f"{urls[-1]}/api/v1/auth/login", json={"email": "guessed@example.com", "password": PASSWORD},
                          timeout=30).status_code
    ok = codes[:limit] == [401] * limit and set(codes[limit:]) == {429}
    figures = (f"failed logins round-robin over {len(urls)} instances: {' '.join(map(str, codes))} "
               f"(limit {limit}); then the right password: {right}")
    return f"rate limit: account throttled after exactly {limit}", ok, figures


def jobs(lb, fake, redis_url):
    tokens = [register_and_login(lb, f"jobs-{number}@example.com")["access_token"] for number in range(JOB_USERS)]
    ids, owner, refused = [], {}, collections.Counter()
    for number in range(JOBS):
        token = tokens[number % JOB_USERS]
        body = {"messages": [{"role": "user", "content": f"job-marker-{number}"}], "max_tokens": 20}
        response = requests.post(f"{lb}/api/v1/ai/jobs", json=body, headers=bearer(token), timeout=30)
        job = response.json().get("id") if response.status_code == 202 else None
        if job is None:
            refused[response.status_code] += 1
        ids.append(job)
        owner[job] = token
    statuses = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        statuses = {job: requests.get(f"{lb}/api/v1/ai/jobs/{job}", headers=bearer(owner[job]), timeout=30).json()["status"]
                    for job in ids if job}
        if all(status in ("succeeded", "failed") for status in statuses.values()):
            break
        time.sleep(0.5)
    calls = collections.Counter()
    for recorded in fake.completions():
        content = (recorded.body or {}).get("messages", [{}])[-1].get("content", "")
        if content.startswith("job-marker-"):
            calls[content] += 1
    connection = redis.Redis.from_url(redis_url)
    ran_on = collections.Counter(
        Job.fetch(job_id(CHAT_JOB, job), connection=connection).worker_name for job in ids if job
    )
    ok = None not in ids and list(statuses.values()).count("succeeded") == JOBS \
        and sorted(calls.values()) == [1] * JOBS and len(calls) == JOBS
    figures = (f"{JOBS} jobs of {JOB_USERS} users: {dict(collections.Counter(statuses.values()))}"
               + (f", refused at submission {dict(refused)}" if refused else "")
               + f"; provider calls per job {sorted(set(calls.values()))}; jobs per worker {sorted(ran_on.values())}")
    return "jobs: each runs exactly once", ok, figures


def rolling_restart(cluster, lb):
    token = register_and_login(lb, "rolling@example.com")["access_token"]
    stop, lock = threading.Event(), threading.Lock()
    counts, errors = collections.Counter(), []

    def client():
        number = 0
        with requests.Session() as session:
            while not stop.is_set():
                path = "/api/v1/users/me" if number % 2 else "/health/live"
                number += 1
                try:
                    status = session.get(f"{lb}{path}", headers=bearer(token), timeout=60).status_code
                    with lock:
                        counts[status] += 1
                except requests.RequestException as error:
                    with lock:
                        errors.append(type(error).__name__)

    clients = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS // 2)]
    for thread in clients:
        thread.start()
    started = time.monotonic()
    time.sleep(1)
    for index in range(INSTANCES):
        old = cluster.instances[index]
        old.send_signal(signal.SIGTERM)  # graceful: stops accepting, finishes in-flight requests
        old.wait(timeout=60)
        cluster.start_instance(index)  # same port; serve() returns once it answers /health/live
        time.sleep(1)
    stop.set()
    for thread in clients:
        thread.join()
    non_2xx = sum(count for status, count in counts.items() if not 200 <= status < 300)
    total = sum(counts.values()) + len(errors)
    ok = non_2xx == 0 and not errors and total > 0
    figures = (f"{INSTANCES} instances restarted one by one in {time.monotonic() - started:.1f} s under "
               f"{len(clients)} client loops: {total} requests, {non_2xx} non-2xx, {len(errors)} connection errors"
               + (f" ({dict(collections.Counter(errors))})" if errors else ""))
    return "rolling restart: no request lost", ok, figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--control", choices=sorted(CONTROLS), help="take one guarantee away (expect a FAIL)")
    options = parser.parse_args()
    limit = int(LOGIN_ACCOUNT_LIMIT.split()[0])
    fake = CountingProvider().start()
    # Long answers: every chat call uses all of its max_tokens.
    fake.reply = " ".join(f"word{number}" for number in range(300))
    database_url, redis_url = start_services(STATE, PG_PORT, REDIS_PORT)
    env = {
        **app_env(database_url, redis_url),
        "RATELIMIT_ENABLED": "true",
        "RATELIMIT_LOGIN_ACCOUNT": LOGIN_ACCOUNT_LIMIT,
        # The per-user default limit (600/min) would throttle this one machine's load generator;
        # the limits under test (failed logins) keep their defaults.
        "RATELIMIT_DEFAULT": "100000 per minute",
        "PROXY_FIX_HOPS": "1",
        "GUNICORN_WORKERS": os.environ.get("GUNICORN_WORKERS", "1"),
        "GUNICORN_THREADS": os.environ.get("GUNICORN_THREADS", "8"),
        "AI_API_BASE": fake.url,
        "AI_API_KEY": FAKE_OPENAI_KEY,
        "AI_MODEL": "fake-model",
        "AI_MAX_TOKENS": str(MAX_TOKENS),
        "AI_MAX_RETRIES": "0",
        "AI_TIMEOUT": "10",
        "PLAN_QUOTAS": f"free:{FREE_QUOTA},pro:2000000",
        "AI_MAX_CONCURRENT": str(AI_MAX_CONCURRENT),
    }
    if options.control == "memory-rate-limits":
        env["RATELIMIT_STORAGE_URI"] = "memory://"
    cluster = Cluster(env, next_upstream="off" if options.control == "no-retry" else "error timeout http_502")
    rows = []
    try:
        subprocess.run([str(BIN / "flask"), "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
        for index in range(INSTANCES):
            cluster.start_instance(index)
        command = cluster.start_workers()
        lb = cluster.start_lb()
        urls = cluster.urls()
        print(f"instances {', '.join(urls)} behind nginx {lb}; 2 workers: {Path(command[0]).name} {' '.join(command[1:])}"
              + (f"\nCONTROL: {CONTROLS[options.control]}" if options.control else ""))

        load_token = register_and_login(lb, "load@example.com")["access_token"]
        with background_load(lb, load_token) as load:
            rows.append(refresh_race(urls))
            rows.extend(quota(urls, fake))
            rows.append(login_rate_limit(urls, limit))
            rows.append(jobs(lb, fake, redis_url))
        background = dict(sorted(load.items(), key=str))
        rows.append(rolling_restart(cluster, lb))
    finally:
        cluster.stop()
        stop_services(STATE)
        fake.stop()

    print(f"\nscale-out check: {INSTANCES} gunicorn instances (workers={env['GUNICORN_WORKERS']}, "
          f"threads={env['GUNICORN_THREADS']}) behind nginx, 2 RQ workers, PostgreSQL, Redis; cores={os.cpu_count()}"
          + (f"; CONTROL: {CONTROLS[options.control]}" if options.control else ""))
    print(f"background load through the balancer during every check before the rolling restart: {background}")
    width = max(len(name) for name, _, _ in rows)
    for name, ok, figures in rows:
        print(f"{'PASS' if ok else 'FAIL'}  {name:<{width}}  {figures}")
    if not all(ok for _, ok, _ in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
