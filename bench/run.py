"""Benchmark saas against the floor any Flask app must pay, in one run.

    make bench            (or: .venv/bin/python bench/run.py)

Starts throwaway PostgreSQL and Redis and serves, each under the same gunicorn.conf.py:

- saas in production mode (JSON logs at INFO, Prometheus multiprocess metrics), twice: with rate
  limits on, as they are by default, with a per-caller limit no load generator reaches (so every
  request is counted in Redis), and with RATELIMIT_ENABLED=false;
- the lean floor (bench/floor_app.py), in the same two modes: Flask, the same token check and the
  same one prepared query through psycopg2, a JSON answer, and with limits on one fixed-window
  counter in Redis; nothing else;
- bare Flask answering /hello with a small JSON body (bench/hello_app.py).

It measures, interleaving the systems and repeating each figure BENCH_ROUNDS times (median),
because this machine's absolute figures vary up to 2x between runs, and records how much CPU
other work on the machine took meanwhile:

- GET /api/v1/users/me (access token) on the floor and on saas in both modes, and bare Flask: the
  issue 28 table, saas's figures as ratios to the floor's in the same mode; /users/me with an API
  key and /health/live (limits on); requests/s, p50, p99 at BENCH_CONNECTIONS connections;
- login at bcrypt cost BCRYPT_ROUNDS against the machine's bcrypt-only ceiling;
- a trivial RQ job (it does nothing) through the worker `make worker` runs, in jobs/s; a job
  that asks PostgreSQL for 1 (each job connects: a horse cannot share its parent's connection);
  and the trivial job through the plain `rq worker` without the project's worker class;
- 400 connections for BENCH_STORM seconds on /health/live and /users/me: socket errors, non-2xx;
- RSS of each gunicorn worker, and its growth over another 20,000 requests.

Settings: BENCH_DURATION (s per figure, 10), BENCH_ROUNDS (3), BENCH_CONNECTIONS (50),
BENCH_STORM (30), BENCH_JOBS (1000), BENCH_TABLE_ONLY (1: the endpoints alone),
BENCH_SERVICES_DIR, BENCH_PG_PORT, BENCH_REDIS_PORT (the throwaway services' place and ports),
GUNICORN_WORKERS, GUNICORN_THREADS, BCRYPT_ROUNDS (12).
"""
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis
import requests
from rq import Queue

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BIN, ROOT, OtherLoad, app_env, serve, start_services, stop, stop_services, wrk  # noqa: E402
from bench.jobs import noop, select_one  # noqa: E402

STATE = Path(os.environ.get("BENCH_SERVICES_DIR", "/tmp/saas-bench-services"))
PG_PORT, REDIS_PORT = int(os.environ.get("BENCH_PG_PORT", "54601")), int(os.environ.get("BENCH_REDIS_PORT", "63951"))
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "50"))
STORM_SECONDS = int(os.environ.get("BENCH_STORM", "30"))
JOBS = int(os.environ.get("BENCH_JOBS", "1000"))
BCRYPT_ROUNDS = int(os.environ.get("BCRYPT_ROUNDS", "12"))
EMAIL, PASSWORD = "bench@example.com", "quiet engines weave long patterns"
# Issue 28: saas's /users/me against the lean floor's, in the same mode of the same run.
FLOOR_GOAL, P99_GOAL = 0.8, 1.25
# BENCH_TABLE_ONLY=1: the endpoints alone (no storm, RSS or jobs), for quick comparisons.
TABLE_ONLY = os.environ.get("BENCH_TABLE_ONLY", "") not in ("", "0")


def _bcrypt_checks(seconds):
    import bcrypt

    hashed = bcrypt.hashpw(b"x" * 44, bcrypt.gensalt(rounds=BCRYPT_ROUNDS))
    count, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        bcrypt.checkpw(b"x" * 44, hashed)
        count += 1
    return count


def bcrypt_ceiling(seconds=DURATION):
    """bcrypt checks per second with every core busy: the most logins this machine can do."""
    cores = os.cpu_count() or 1
    with multiprocessing.Pool(cores) as pool:
        return sum(pool.map(_bcrypt_checks, [seconds] * cores)) / seconds


def account(app_url):
    registered = requests.post(f"{app_url}/api/v1/auth/register", json={"email": EMAIL, "password": PASSWORD}, timeout=30)
    if registered.status_code != 201:
        raise RuntimeError(f"registration failed: {registered.status_code} {registered.text}")
    login = requests.post(f"{app_url}/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}, timeout=30)
    if login.status_code != 200:
        raise RuntimeError(f"login failed: {login.status_code} {login.text}")
    token = login.json()["access_token"]
    created = requests.post(f"{app_url}/api/v1/api-keys", json={"name": "bench"}, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    if created.status_code != 201:
        raise RuntimeError(f"API key creation failed: {created.status_code} {created.text}")
    return token, created.json()["key"]


def measure_endpoints(servers, token, key):
    """Every figure BENCH_ROUNDS times, the systems interleaved; {name: [result, ...]}.

    ``servers``: {"hello", "floor on", "floor off", "saas on", "saas off"} -> base URL."""
    bearer = [f"Authorization: Bearer {token}"]

    def me(server, headers=bearer):
        return lambda: wrk(f"{servers[server]}/api/v1/users/me", duration=DURATION, connections=CONNECTIONS, headers=headers)

    figures = {
        "bare Flask /hello": lambda: wrk(f"{servers['hello']}/hello", duration=DURATION, connections=CONNECTIONS),
        "floor, limits on": me("floor on"),
        "floor, limits off": me("floor off"),
        "saas, limits on": me("saas on"),
        "saas, limits off": me("saas off"),
        "saas API key, limits on": me("saas on", [f"X-API-Key: {key}"]),
        "health/live": lambda: wrk(f"{servers['saas on']}/health/live", duration=DURATION, connections=CONNECTIONS),
        # bcrypt-bound: two connections per core saturate it; more would only queue.
        "login": lambda: wrk(
            f"{servers['saas on']}/api/v1/auth/login", duration=DURATION, connections=2 * (os.cpu_count() or 1),
            script=ROOT / "bench" / "login.lua", env={**os.environ, "BENCH_EMAIL": EMAIL, "BENCH_PASSWORD": PASSWORD},
        ),
        "bcrypt ceiling": lambda: {"rps": bcrypt_ceiling()},
    }
    results = {name: [] for name in figures}
    others = OtherLoad(STATE)
    for round_number in range(ROUNDS):
        names = list(figures)
        names = names[round_number % len(names):] + names[:round_number % len(names)]  # rotate the order
        for name in names:
            others.start()
            result = figures[name]()
            result["others"] = others.stop()
            results[name].append(result)
            print(f"  round {round_number + 1}: {name}: {result['rps']:.0f}/s"
                  + (f", p99 {result['p99']:.1f} ms" if "p99" in result else "")
                  + f"; other work on the machine: {result['others']:.2f} cores", flush=True)
    return results


def median(results, field):
    return statistics.median(result[field] for result in results)


def storm(app_url, token):
    """400 connections at once on the probe and on the authenticated path."""
    return {
        "health/live": wrk(f"{app_url}/health/live", duration=STORM_SECONDS, connections=400, threads=4),
        "users/me (token)": wrk(
            f"{app_url}/api/v1/users/me", duration=STORM_SECONDS, connections=400, threads=4,
            headers=[f"Authorization: Bearer {token}"],
        ),
    }


def worker_rss_mb(master):
    """RSS of each gunicorn worker (the master's children), in MB."""
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    sizes = []
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sizes


def rss_over_requests(master, app_url, token, requests_count=20000):
    before = worker_rss_mb(master)
    seconds = max(5, requests_count // 1000)
    while True:
        run = wrk(f"{app_url}/api/v1/users/me", duration=seconds, connections=CONNECTIONS, headers=[f"Authorization: Bearer {token}"])
        if run["requests"] >= requests_count:
            break
        seconds *= 2
    return before, worker_rss_mb(master), run["requests"]


def jobs_per_second(env, redis_url, count, command, job):
    """Queue ``count`` of ``job``, drain them with ``command --burst``; jobs/s between the
    first job's start and the last one's end (the worker's own start-up not counted)."""
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("high", connection=connection)
    jobs = [queue.enqueue(job) for _ in range(count)]
    subprocess.run([*command, "--burst"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=3600)
    for job in jobs:
        job.refresh()
    finished = [job for job in jobs if job.get_status() == "finished"]
    if len(finished) != count:
        raise RuntimeError(f"only {len(finished)} of {count} jobs finished")
    span = (max(job.ended_at for job in jobs) - min(job.started_at for job in jobs)).total_seconds()
    return count / span


def main():
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    database_url, redis_url = start_services(STATE, PG_PORT, REDIS_PORT)
    env = app_env(database_url, redis_url, BCRYPT_ROUNDS)
    env_off = app_env(database_url, redis_url, BCRYPT_ROUNDS, rate_limits=False)
    processes = {}
    try:
        subprocess.run([str(BIN / "flask"), "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
        servers = {}
        for name, module, server_env in (
            ("saas on", "wsgi:app", env), ("saas off", "wsgi:app", env_off), ("hello", "bench.hello_app:app", env),
            ("floor on", "bench.floor_app:app", env), ("floor off", "bench.floor_app:app", env_off),
        ):
            processes[name], servers[name] = serve(module, server_env, probe="/health/live" if "saas" in name else "/hello")
        token, key = account(servers["saas on"])
        print(f"{', '.join(f'{name} {url}' for name, url in servers.items())}; "
              f"{ROUNDS} rounds of {DURATION}s at {CONNECTIONS} connections", flush=True)
        results = measure_endpoints(servers, token, key)
        for name in ("hello", "floor on", "floor off", "saas off"):
            stop(processes.pop(name))
        app, app_url = processes["saas on"], servers["saas on"]
        if not TABLE_ONLY:
            storms = storm(app_url, token)
            rss_before, rss_after, rss_requests = rss_over_requests(app, app_url, token)
        stop(app)
        if not TABLE_ONLY:
            worker = [sys.executable, "-m", "saas.worker"]
            plain = [str(BIN / "rq"), "worker", "--url", redis_url, "high"]
            jobs_rate = jobs_per_second(env, redis_url, JOBS, worker, noop)
            query_jobs_rate = jobs_per_second(env, redis_url, JOBS, worker, select_one)
            plain_rate = jobs_per_second(env, redis_url, max(10, JOBS // 50), plain, noop)
    finally:
        for process in processes.values():
            stop(process)
        stop_services(STATE)

    workers, threads = os.environ.get("GUNICORN_WORKERS", "default"), os.environ.get("GUNICORN_THREADS", "default")
    print(f"\nsaas benchmark: median of {ROUNDS} interleaved rounds, {DURATION}s each, {CONNECTIONS} connections, "
          f"gunicorn workers={workers} threads={threads}, cores={os.cpu_count()}, LOG_LEVEL={env['LOG_LEVEL']}; "
          f"limits on: RATELIMIT_DEFAULT={env['RATELIMIT_DEFAULT']} (counted, never reached)")
    others = [result["others"] for figure in results.values() for result in figure]
    print(f"other work on the machine while measuring: median {statistics.median(others):.2f} cores, "
          f"most {max(others):.2f} (of {os.cpu_count()})")
    print_floor_table(results)
    baseline = median(results["bare Flask /hello"], "rps")
    print(f"\n{'endpoint':<26}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'errors':>8}{'vs bare':>9}")
    for name in results:
        if name == "bcrypt ceiling":
            continue
        rps = median(results[name], "rps")
        print(f"{name:<26}{rps:>9.0f}{median(results[name], 'p50'):>9.2f}{median(results[name], 'p99'):>9.2f}"
              f"{sum(r['non_2xx'] for r in results[name]):>9}{sum(r['errors'] for r in results[name]):>8}"
              f"{rps / baseline:>9.2f}")
    ceiling = median(results["bcrypt ceiling"], "rps")
    print(f"\nlogin: {median(results['login'], 'rps'):.1f}/s against a bcrypt-only ceiling (cost {BCRYPT_ROUNDS}, all cores) "
          f"of {ceiling:.1f}/s: {median(results['login'], 'rps') / ceiling:.2f} of it (target >= 0.9)")
    if TABLE_ONLY:
        return
    print(f"jobs: {jobs_rate:.0f} trivial jobs/s through `python -m saas.worker` (target >= 50); "
          f"{query_jobs_rate:.0f} jobs/s when each asks PostgreSQL for 1; "
          f"{plain_rate:.1f} trivial jobs/s through plain `rq worker` (an app built per job)")
    for name, run in storms.items():
        print(f"400 connections, {STORM_SECONDS}s on {name}: {run['requests']} requests, {run['errors']} socket errors, "
              f"{run['non_2xx']} non-2xx, p99 {run['p99']:.0f} ms")
    print(f"RSS per gunicorn worker: {', '.join(f'{mb:.0f}' for mb in rss_before)} MB, then "
          f"{', '.join(f'{mb:.0f}' for mb in rss_after)} MB after {rss_requests} more requests (target < 100 MB, flat)")


def print_floor_table(results):
    """The issue's table: bare Flask, the lean floor and saas, limits on and off, and saas's
    ratios to the floor in the same mode against the goals."""
    def cell(name, floor=None):
        rps, p99 = median(results[name], "rps"), median(results[name], "p99")
        if floor is None:
            return f"{rps:,.0f} req/s, p99 {p99:.0f} ms"
        floor_rps, floor_p99 = median(results[floor], "rps"), median(results[floor], "p99")
        return f"{rps:,.0f} req/s ({rps / floor_rps:.2f}x the floor), p99 {p99:.0f} ms ({p99 / floor_p99:.2f}x)"

    hello = cell("bare Flask /hello")
    print(f"\n{'GET /api/v1/users/me, wrk -c' + str(CONNECTIONS):<34}| {'limits on (a limit too high to reach)':<56}| limits off")
    print(f"{'bare Flask hello (no limits)':<34}| {hello:<56}| {hello}")
    print(f"{'lean Flask floor (bench/floor_app)':<34}| {cell('floor, limits on'):<56}| {cell('floor, limits off')}")
    print(f"{'saas':<34}| {cell('saas, limits on', 'floor, limits on'):<56}| {cell('saas, limits off', 'floor, limits off')}")
    for mode in ("on", "off"):
        ratio = median(results[f"saas, limits {mode}"], "rps") / median(results[f"floor, limits {mode}"], "rps")
        p99 = median(results[f"saas, limits {mode}"], "p99") / median(results[f"floor, limits {mode}"], "p99")
        met = ratio >= FLOOR_GOAL and p99 <= P99_GOAL
        print(f"goal, limits {mode}: >= {FLOOR_GOAL}x the floor's req/s ({ratio:.2f}x) and p99 within {P99_GOAL}x "
              f"the floor's ({p99:.2f}x): {'met' if met else 'missed'}")


if __name__ == "__main__":
    main()
