"""Static checks on the files that install, start and package the app."""

import json
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _dockerfile_instructions():
    """(INSTRUCTION, args) pairs, with continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def _compose_services():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def _load_gunicorn_conf(env):
    code = (
        "import json, runpy; ns = runpy.run_path('gunicorn.conf.py'); "
        "print(json.dumps({k: ns[k] for k in ('worker_class', 'workers', 'threads', 'bind')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_dockerfile_passes_hadolint_without_findings():
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), f"hadolint missing at {hadolint} (make dev-deps)"
    result = subprocess.run(
        [str(hadolint), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_dockerfile_is_multi_stage():
    assert sum(1 for instr, _ in _dockerfile_instructions() if instr == "FROM") >= 2


def test_dockerfile_runs_as_non_root_user():
    instructions = _dockerfile_instructions()
    cmd_at = max(i for i, (instr, _) in enumerate(instructions) if instr == "CMD")
    users = [args.split(":")[0] for instr, args in instructions[:cmd_at] if instr == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_dockerfile_has_healthcheck():
    assert any(instr == "HEALTHCHECK" for instr, _ in _dockerfile_instructions())


def test_compose_defines_services_on_pinned_images():
    services = _compose_services()
    assert {"api", "worker", "postgres", "redis"} <= services.keys()
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"


def test_compose_healthchecks_postgres_redis_and_api():
    services = _compose_services()
    for name in ("postgres", "redis", "api"):
        assert services[name]["healthcheck"]["test"], name


def test_compose_api_waits_for_migrations():
    depends = _compose_services()["api"]["depends_on"]
    migrations = [
        name for name, dep in depends.items() if dep.get("condition") == "service_completed_successfully"
    ]
    assert migrations
    command = _compose_services()[migrations[0]]["command"]
    command = command if isinstance(command, str) else " ".join(command)
    assert "db upgrade" in command


def test_compose_and_make_run_the_same_worker():
    assert _compose_services()["worker"]["command"] == ["python", "-m", "saas.worker"]
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nworker:", 1)[1].split("\n\n", 1)[0]
    assert "-m saas.worker" in recipe


def test_gunicorn_conf_defaults_to_gthread():
    conf = _load_gunicorn_conf({})
    assert conf["worker_class"] == "gthread"
    assert conf["workers"] >= 1 and conf["threads"] >= 1
    assert conf["bind"] == "0.0.0.0:8000"


def test_gunicorn_conf_reads_overrides_from_env():
    conf = _load_gunicorn_conf({"GUNICORN_WORKERS": "3", "GUNICORN_THREADS": "7"})
    assert (conf["worker_class"], conf["workers"], conf["threads"]) == ("gthread", 3, 7)


def test_gunicorn_conf_uses_only_known_settings(monkeypatch):
    # gunicorn silently ignores unknown names, so a typo would go unnoticed.
    from gunicorn.config import Config

    # The file sets PROMETHEUS_MULTIPROC_DIR for its workers; keep it out of this process.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent/not-used")

    namespace = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    names = {k for k, v in namespace.items() if not k.startswith("_") and not isinstance(v, ModuleType)}
    assert names <= Config().settings.keys(), names - Config().settings.keys()


def test_shell_scripts_have_valid_syntax():
    bash = shutil.which("bash")
    assert bash
    for script in ("scripts/test-services.sh", "scripts/docker-daemon.sh", "scripts/image.sh", ".ci/run"):
        result = subprocess.run([bash, "-n", script], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, f"{script}: {result.stderr}"


def test_compose_sends_mail_to_mailpit_by_default():
    services = _compose_services()
    mailpit = services["mailpit"]
    assert mailpit["image"].startswith("axllent/mailpit:v")  # a pinned release, not latest
    assert "8025:8025" in mailpit["ports"] and "1025" in mailpit["expose"]
    for name in ("api", "worker"):
        environment = services[name]["environment"]
        assert environment["SMTP_HOST"] == "${SMTP_HOST:-mailpit}"
        assert environment["SMTP_PORT"] == "${SMTP_PORT:-1025}"
        assert environment["SMTP_STARTTLS"] == "${SMTP_STARTTLS:-false}"
