-- wrk script: POST a JSON login; BENCH_EMAIL / BENCH_PASSWORD come from bench/run.py.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"email": "%s", "password": "%s"}', os.getenv("BENCH_EMAIL"), os.getenv("BENCH_PASSWORD"))
