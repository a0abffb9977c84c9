"""How tests/test_image.py runs the image, in one place: tests/test_image_parity.py holds
docker-compose.yml and the Kubernetes manifests to the same commands, user, hardening, port and
probe paths, so the three cannot drift.

Containers run as the Kubernetes manifests run them: read-only root filesystem, a tmpfs on /tmp,
uid/gid 10001, every capability dropped, no privilege escalation, configured by environment only.
There is no bridge network on the test machines: they share the host's (loopback PostgreSQL,
Redis, fakes and SMTP server), which is why the api is told its port (PORT, GUNICORN_BIND).
"""
import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
IMAGE_ID_FILE = ROOT / "build" / "image-id"

RUN_AS = "10001:10001"
TMPFS = "/tmp"
CAP_DROP = "ALL"
SECURITY_OPT = "no-new-privileges:true"
# docker run's spelling of the manifests' securityContext and /tmp volume, and of compose's
# user, read_only, tmpfs, cap_drop and security_opt.
HARDENING = (
    "--read-only", "--tmpfs", TMPFS, "--user", RUN_AS, "--cap-drop", CAP_DROP, "--security-opt", SECURITY_OPT,
)
# The services of docker-compose.yml that run the app's image, and the one that runs the image's CMD.
APP_SERVICES = ("migrate", "api", "worker")
# Paths the test gets a 200 from through the api container: the only ones probes may use.
PROBE_PATHS = ("/health/live", "/health/ready")
# The run label that lets a test session remove every container it started.
RUN_LABEL = "saas.test-run"


def compose_services():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def compose_command(service):
    """The ``command`` of a compose service as compose runs it: ``$$`` is compose's escaped ``$``."""
    return [part.replace("$$", "$") for part in compose_services()[service]["command"]]


def docker(*args, check=True, timeout=120, **kwargs):
    """Run the docker CLI; its completed process (text)."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:2])} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
    return result


def inspect(kind, name):
    return json.loads(docker(kind, "inspect", name).stdout)[0]


def wait_until(condition, timeout, what, step=0.2):
    """Poll ``condition`` until it returns something true; that value. Fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout} s")


class Container:
    """One container of the image, started detached, hardened as in Kubernetes."""

    def __init__(self, image, run_id, role, env, command=(), options=()):
        self.name = f"saas-test-{run_id}-{role}"
        self.role = role
        docker(
            "run", "--detach", "--name", self.name, "--label", f"{RUN_LABEL}={run_id}", "--network", "host",
            *HARDENING, *options, *env_options(env), image, *command,
        )

    def state(self):
        return inspect("container", self.name)["State"]

    def logs(self):
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def log_records(self):
        """The JSON lines of its log, parsed (gunicorn's, the app's and the worker's)."""
        records = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass
        return records

    def errors(self):
        """What it logged at ERROR or above (with its exception's last line), and any plain traceback."""
        problems = [
            f"{r.get('logger')}: {r.get('message')} {(r.get('exc_info') or '').strip().splitlines()[-1:]}"
            for r in self.log_records() if r.get("level") in ("ERROR", "CRITICAL")
        ]
        problems += [line for line in self.logs().splitlines() if line.startswith("Traceback")]
        return problems

    def exec(self, *command):
        return docker("exec", self.name, *command, check=False)

    def wait_for_log(self, pattern, timeout=30):
        regex = re.compile(pattern)
        return wait_until(lambda: regex.search(self.logs()), timeout, f"{self.role} logging {pattern!r}")

    def stop_in_background(self, grace_seconds):
        """``docker stop`` (SIGTERM, then SIGKILL after ``grace_seconds``), not waited for."""
        return subprocess.Popen(
            ["docker", "stop", "--time", str(grace_seconds), self.name],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )


def env_options(env):
    options = []
    for name, value in env.items():
        options += ["--env", f"{name}={value}"]
    return options


def run_once(image, env, command, timeout=120):
    """Run ``command`` in a throwaway container of the image, hardened, attached; its result."""
    return docker(
        "run", "--rm", "--network", "host", *HARDENING, *env_options(env), image, *command,
        check=False, timeout=timeout,
    )


def new_run_id():
    return uuid.uuid4().hex[:10]
