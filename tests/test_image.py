"""The image we ship is the image we test: the containers of the image that `make image` built from
this tree (build/image-id), run as docker-compose.yml and the Kubernetes manifests run them.

The migrate step with compose's command, the api from the image's own CMD and the worker from
compose's command, each hardened as in Kubernetes (tests/image_support.py), configured by
environment only, against the suite's PostgreSQL (a database of their own), Redis (a database
number of its own), fake Stripe, fake AI provider and SMTP server, on the host's network. Needs a
Docker daemon and the image: `make test` and `make test-image` start the one and build the other.
"""
import hashlib
import json
import threading
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import redis
import requests
import sqlalchemy as sa
from dotenv import dotenv_values
from sqlalchemy.engine import make_url

from config import normalize_database_url
from tests.ai_support import CHAT, JOBS, messages
from tests.conftest import DATABASE_URL, FAKE_OPENAI, FAKE_STRIPE, REDIS_URL, WEBHOOK_SECRET
from tests.fake_openai import API_KEY as FAKE_OPENAI_API_KEY
from tests.helpers import PASSWORD, bearer
from tests.image_support import (
    IMAGE_ID_FILE,
    PROBE_PATHS,
    ROOT,
    RUN_AS,
    RUN_LABEL,
    Container,
    compose_command,
    compose_services,
    docker,
    inspect,
    new_run_id,
    run_once,
    wait_until,
)
from tests.servers import free_port

pytestmark = [pytest.mark.docker, pytest.mark.services]

SECRET_KEY = "image-test-secret-key-of-more-than-32-bytes-0123456789"
METRICS_TOKEN = "image-test-metrics-token"
SUPERUSER = ("first-admin@example.com", "seeded by the migrate container step")
# What the image's /app holds: the app and nothing else (.dockerignore lets only these in).
RUNTIME_PARTS = ("saas", "migrations", "config.py", "wsgi.py", "gunicorn.conf.py", "requirements.lock")
SIZE_LIMIT = 300 * 1000 * 1000
# Inside the image, as the app's user: the files under /app with their SHA-256, compilers on the
# PATH, and anything that looks like a repository or a secret anywhere on the filesystem.
CONTENTS_SCRIPT = r"""
import hashlib, json, os, re
app = {}
for root, dirs, files in os.walk("/app"):
    for name in files:
        path = os.path.join(root, name)
        with open(path, "rb") as handle:
            app[os.path.relpath(path, "/app")] = hashlib.sha256(handle.read()).hexdigest()
compiler = re.compile(r"^(.+-)?(cc|gcc|g\+\+|c\+\+|cpp|clang|clang\+\+|tcc|ld|as)(-[0-9.]+)?$")
compilers = sorted(
    os.path.join(directory, name)
    for directory in dict.fromkeys(os.environ["PATH"].split(os.pathsep) + ["/usr/bin", "/usr/local/bin"])
    if os.path.isdir(directory)
    for name in os.listdir(directory)
    if compiler.match(name)
)
suspicious = {".git", ".env", "secrets.env", ".netrc", ".pypirc", "id_rsa", "id_ed25519", ".git-credentials"}
found = []
for root, dirs, files in os.walk("/"):
    if root == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
    found += [os.path.join(root, name) for name in dirs + files if name in suspicious]
print(json.dumps({"app": app, "compilers": compilers, "suspicious": found, "instance": os.path.isdir("/app/instance")}))
"""


def expected_app_files():
    """{path: sha256} of what the image's /app must hold: RUNTIME_PARTS of this tree, no bytecode."""
    expected = {}
    for part in RUNTIME_PARTS:
        path = ROOT / part
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        for file in files:
            relative = file.relative_to(ROOT)
            if "__pycache__" in relative.parts or file.suffix == ".pyc":
                continue
            expected[str(relative)] = hashlib.sha256(file.read_bytes()).hexdigest()
    return expected


# --- the stack: migrate, then api and worker ----------------------------------------------------


@pytest.fixture(scope="module")
def image():
    """The image `make image` built from this tree, as `docker image inspect` shows it."""
    if not IMAGE_ID_FILE.exists():
        pytest.fail("build/image-id is missing: build the image with `make image` (make test and make test-image do)")
    image_id = IMAGE_ID_FILE.read_text().strip()
    result = docker("image", "inspect", image_id, check=False)
    if result.returncode != 0:
        pytest.fail(f"the image {image_id} of build/image-id cannot be inspected (make image; is a Docker daemon running?): {result.stderr}")
    return json.loads(result.stdout)[0]


@pytest.fixture(scope="module")
def run_id(image):
    """This module's run: every container it starts carries its label, and goes at the end."""
    run = new_run_id()
    yield run
    started = docker("ps", "--all", "--quiet", "--filter", f"label={RUN_LABEL}={run}", check=False).stdout.split()
    if started:
        docker("rm", "--force", *started, check=False)


@pytest.fixture(scope="module")
def image_database(run_id):
    """A database of their own on the suite's PostgreSQL, empty: the migrate step builds it."""
    if not DATABASE_URL:
        pytest.fail("TEST_DATABASE_URL is not set: run the suite with `make test` (or `make test-image`)")
    name = f"saas_image_{run_id}"
    server = sa.create_engine(normalize_database_url(DATABASE_URL), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield make_url(DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    with server.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


@pytest.fixture(scope="module")
def image_redis_url():
    """The suite's Redis, at a database number the rest of the suite does not use (nor flush)."""
    if not REDIS_URL:
        pytest.fail("TEST_REDIS_URL is not set: run the suite with `make test` (or `make test-image`)")
    url = urlsplit(REDIS_URL)._replace(path="/9").geturl()
    yield url
    redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="module")
def app_env(image_database, image_redis_url, smtp):
    """The containers' environment: the Kubernetes base ConfigMap's settings (what production
    runs), with the secrets and the addresses of this machine's services and fakes."""
    settings = {name: value for name, value in dotenv_values(ROOT / "deploy" / "kubernetes" / "base" / "settings.env").items() if value}
    return {
        **settings,
        "PROXY_FIX_HOPS": "0",  # no nginx in front of gunicorn here
        "DATABASE_URL": image_database,
        "REDIS_URL": image_redis_url,
        "SECRET_KEY": SECRET_KEY,
        "FRONTEND_URL": "http://localhost:3000",
        "ALLOWED_ORIGINS": "http://localhost:3000",
        "STRIPE_SECRET_KEY": "sk_test_image",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": FAKE_STRIPE.url,
        "STRIPE_PLANS": "pro:price_pro,team:price_team",
        "STRIPE_MAX_NETWORK_RETRIES": "0",
        "AI_API_BASE": FAKE_OPENAI.url,
        "AI_API_KEY": FAKE_OPENAI_API_KEY,
        "AI_MODEL": "fake-model",
        "AI_MAX_RETRIES": "0",
        "REQUIRE_VERIFIED_EMAIL": "true",
        "METRICS_TOKEN": METRICS_TOKEN,
        **smtp.settings,
    }


@pytest.fixture(scope="module")
def migrated(image, app_env):
    """The migrate step: compose's command (the Kubernetes Job's), in a container, to completion."""
    command = compose_command("migrate")
    env = {**app_env, "FIRST_SUPERUSER_EMAIL": SUPERUSER[0], "FIRST_SUPERUSER_PASSWORD": SUPERUSER[1]}
    result = run_once(image["Id"], env, command)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}{result.stderr}"
    return env, result


@pytest.fixture(scope="module")
def stack(image, run_id, app_env, migrated):
    """The api (the image's CMD) and the worker (compose's command), running and healthy."""
    port = free_port()
    api_env = {**app_env, "PORT": str(port), "GUNICORN_BIND": f"127.0.0.1:{port}"}
    # The image's HEALTHCHECK command as it is; only probed every second instead of every 30.
    api = Container(image["Id"], run_id, "api", api_env, options=("--health-interval", "1s"))
    worker = Container(image["Id"], run_id, "worker", app_env, command=compose_command("worker"))

    def health():
        state = api.state()
        assert state["Running"], f"the api container exited ({state['ExitCode']}):\n{api.logs()[-4000:]}"
        assert state["Health"]["Status"] != "unhealthy", f"{state['Health']}\n{api.logs()[-4000:]}"
        return state["Health"]["Status"] == "healthy"

    wait_until(health, 90, "the api container's HEALTHCHECK turning healthy")
    wait_until(lambda: "Listening on" in worker.logs() or worker.state()["Status"] != "running", 60, "the worker starting")
    assert worker.state()["Running"], f"the worker container exited:\n{worker.logs()[-4000:]}"
    return SimpleNamespace(url=f"http://127.0.0.1:{port}", api=api, worker=worker)


def sign_up_verified(stack, smtp, email):
    """Register through the api, verify the address from the mail the worker sent, log in: tokens."""
    registered = requests.post(f"{stack.url}/api/v1/auth/register", json={"email": email, "password": PASSWORD}, timeout=30)
    assert registered.status_code == 201, registered.text
    assert registered.json()["email_verified"] is False
    [message] = smtp.wait_for(email, timeout=60)
    assert message.link.startswith("http://localhost:3000/verify-email?token=")
    verified = requests.post(f"{stack.url}/api/v1/auth/verify-email", json={"token": message.token}, timeout=30)
    assert verified.status_code == 204, verified.text
    login = requests.post(f"{stack.url}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=30)
    assert login.status_code == 200, login.text
    return login.json()


@pytest.fixture(scope="module")
def stopping_users(stack, smtp):
    """Users for the stop tests, signed up while both api and worker run: the worker's test stops
    the worker (the api's then needs no mail), and the api's stops the api (it runs last)."""
    return {email: sign_up_verified(stack, smtp, email)["access_token"] for email in ("worker-stop@example.com", "api-stop@example.com")}


def job_status(stack, token, job_id):
    response = requests.get(f"{stack.url}{JOBS}/{job_id}", headers=bearer(token), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


# --- the tests -----------------------------------------------------------------------------------


def test_the_image_holds_the_app_and_nothing_else(image):
    result = run_once(image["Id"], {}, ["python", "-c", CONTENTS_SCRIPT])
    assert result.returncode == 0, result.stderr
    contents = json.loads(result.stdout)

    expected = expected_app_files()
    assert sorted(set(contents["app"]) - set(expected)) == [], "in the image but not part of the app"
    assert sorted(set(expected) - set(contents["app"])) == [], "part of the app but not in the image (or a stale image: make image)"
    assert [path for path in expected if contents["app"][path] != expected[path]] == [], "stale image: run `make image`"
    assert contents["instance"]
    assert contents["compilers"] == []
    assert contents["suspicious"] == []

    pip_check = run_once(image["Id"], {}, ["pip", "check"])
    assert pip_check.returncode == 0, pip_check.stdout + pip_check.stderr

    assert image["Config"]["User"] == RUN_AS
    assert image["Config"]["ExposedPorts"] == {"8000/tcp": {}}
    assert image["Size"] < SIZE_LIMIT, f"{image['Size'] / 1e6:.0f} MB uncompressed (limit {SIZE_LIMIT / 1e6:.0f} MB)"


def test_the_migrate_step_builds_the_schema_and_seeds_the_first_superuser(image, migrated, stack):
    env, first = migrated
    assert "Running upgrade" in first.stdout + first.stderr  # a real upgrade from an empty database
    again = run_once(image["Id"], env, compose_command("migrate"))  # every release runs it
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Running upgrade" not in again.stdout + again.stderr

    login = requests.post(f"{stack.url}/api/v1/auth/login", json={"email": SUPERUSER[0], "password": SUPERUSER[1]}, timeout=30)
    assert login.status_code == 200, login.text
    me = requests.get(f"{stack.url}/api/v1/users/me", headers=bearer(login.json()["access_token"]), timeout=30)
    assert me.json()["is_superuser"] is True


def test_the_images_healthcheck_and_the_probes_pass_through_the_api_container(image, stack):
    container = inspect("container", stack.api.name)
    assert container["Config"]["Healthcheck"]["Test"] == image["Config"]["Healthcheck"]["Test"]
    assert container["State"]["Health"]["Status"] == "healthy"
    assert container["Config"]["Cmd"] == image["Config"]["Cmd"]  # the image's own CMD
    assert container["HostConfig"]["ReadonlyRootfs"] and container["Config"]["User"] == RUN_AS

    compose_probe = compose_services()["api"]["healthcheck"]["test"]
    assert compose_probe[0] == "CMD"
    probed = stack.api.exec(*compose_probe[1:])
    assert probed.returncode == 0, probed.stdout + probed.stderr
    for path in PROBE_PATHS:
        assert requests.get(f"{stack.url}{path}", timeout=30).status_code == 200, path
    assert requests.get(f"{stack.url}/health", timeout=30).json() == {"status": "healthy", "database": "ok", "redis": "ok"}


def test_a_user_journey_through_the_containers(stack, smtp, fake_stripe, fake_openai):
    tokens = sign_up_verified(stack, smtp, "journey@example.com")
    headers = bearer(tokens["access_token"])

    me = requests.get(f"{stack.url}/api/v1/users/me", headers=headers, timeout=30)
    assert me.status_code == 200
    assert me.json()["email"] == "journey@example.com" and me.json()["email_verified"] is True

    checkout = requests.post(f"{stack.url}/api/v1/billing/create-checkout-session", json={"plan": "pro"}, headers=headers, timeout=30)
    assert checkout.status_code == 200, checkout.text
    session = fake_stripe.checkout_sessions[checkout.json()["session_id"]]
    customer = requests.get(f"{stack.url}/api/v1/users/me", headers=headers, timeout=30).json()["stripe_customer_id"]
    assert customer and session["customer"] == customer

    submitted = requests.post(f"{stack.url}{JOBS}", json={"messages": messages("Summarise the news")}, headers=headers, timeout=30)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    done = wait_until(
        lambda: (job := job_status(stack, tokens["access_token"], job_id))["status"] in ("succeeded", "failed") and job,
        60, "the worker container running the AI job",
    )
    assert done["status"] == "succeeded", done
    assert done["result"]["content"] == fake_openai.reply
    assert len(fake_openai.completions()) == 1

    assert requests.get(f"{stack.url}/docs", timeout=30).status_code == 200
    assert requests.get(f"{stack.url}/metrics", timeout=30).status_code == 401
    metrics = requests.get(f"{stack.url}/metrics", headers=bearer(METRICS_TOKEN), timeout=30)
    assert metrics.status_code == 200
    assert 'saas_http_request_duration_seconds_count{endpoint="users.get_me",method="GET",status="200"}' in metrics.text
    assert 'saas_rq_queue_depth{queue="default"} 0.0' in metrics.text


def test_a_stopped_worker_finishes_the_job_it_is_running(stack, stopping_users, fake_openai):
    token = stopping_users["worker-stop@example.com"]
    held = fake_openai.answer_gate = threading.Event()
    try:
        submitted = requests.post(f"{stack.url}{JOBS}", json={"messages": messages()}, headers=bearer(token), timeout=30)
        assert submitted.status_code == 202, submitted.text
        wait_until(fake_openai.completions, 60, "the worker calling the AI provider")

        stopping = stack.worker.stop_in_background(grace_seconds=60)
        stack.worker.wait_for_log(r"[Ww]arm shut down requested")
        assert job_status(stack, token, submitted.json()["id"])["status"] == "running"
        held.set()
        stopping.wait(timeout=90)
    finally:
        held.set()

    state = stack.worker.state()
    assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 0, False), stack.worker.logs()[-4000:]
    job = job_status(stack, token, submitted.json()["id"])
    assert job["status"] == "succeeded", job


def test_a_stopped_api_drains_its_requests_in_flight(stack, stopping_users, fake_openai):
    token = stopping_users["api-stop@example.com"]
    in_flight = 3
    answers = []

    def chat():
        try:
            answers.append(requests.post(f"{stack.url}{CHAT}", json={"messages": messages()}, headers=bearer(token), timeout=90))
        except requests.RequestException as error:
            answers.append(error)

    held = fake_openai.answer_gate = threading.Event()
    clients = [threading.Thread(target=chat) for _ in range(in_flight)]
    try:
        for client in clients:
            client.start()
        wait_until(lambda: len(fake_openai.completions()) == in_flight, 60, "the chats reaching the AI provider")

        stopping = stack.api.stop_in_background(grace_seconds=60)
        stack.api.wait_for_log(r"Handling signal: term")
        assert answers == []  # all still in flight when gunicorn got SIGTERM
        held.set()
        for client in clients:
            client.join(timeout=90)
        stopping.wait(timeout=90)
    finally:
        held.set()

    assert [getattr(answer, "status_code", answer) for answer in answers] == [200] * in_flight
    assert all(answer.json()["content"] == fake_openai.reply for answer in answers)
    state = stack.api.state()
    assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 0, False), stack.api.logs()[-4000:]


def test_no_container_logged_an_error(stack, migrated):
    assert stack.api.errors() == []
    assert stack.worker.errors() == []
    _, migrate = migrated
    assert "Traceback" not in migrate.stdout + migrate.stderr
