"""The Kubernetes overlays: rendered and validated as `make k8s` does, then their invariants.

Needs the pinned tools from `make k8s-tools` (make test installs them); no PostgreSQL or Redis.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import config

# Needs the pinned Kubernetes tools (`make k8s-tools`): part of `make test`, not `make test-fast`.
pytestmark = pytest.mark.k8s

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "production")
APP_IMAGE = {"dev": "saas:dev", "production": "registry.example.com/saas:1.0.0"}
GUNICORN_GRACEFUL_TIMEOUT = 30
SECRET_NAMES = {
    "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "AI_API_KEY",
    "METRICS_TOKEN", "SENTRY_DSN", "SMTP_USERNAME", "SMTP_PASSWORD", "FIRST_SUPERUSER_EMAIL",
    "FIRST_SUPERUSER_PASSWORD",
}
# Every variable config.py reads (the app's and gunicorn's settings).
SETTING_NAMES = {
    field.alias for group in config.Settings.__subclasses__() for field in group.model_fields.values()
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """{overlay: [documents]}, rendered by deploy/kubernetes/check.py, which must pass."""
    out = tmp_path_factory.mktemp("kubernetes")
    result = subprocess.run(
        [sys.executable, str(K8S / "check.py"), "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"make k8s would fail:\n{result.stdout}\n{result.stderr}"
    return {overlay: list(yaml.safe_load_all((out / f"{overlay}.yaml").read_text())) for overlay in OVERLAYS}


def find(documents, kind, name):
    [found] = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def pod_spec(documents, kind, name):
    return find(documents, kind, name)["spec"]["template"]["spec"]


def container(spec, name):
    [found] = [c for c in spec["containers"] if c["name"] == name]
    return found


def workloads(documents):
    return [d for d in documents if d["kind"] in ("Deployment", "StatefulSet", "Job")]


def config_map(documents, prefix):
    [found] = [d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith(prefix)]
    return found


def test_make_k8s_renders_every_overlay(rendered):
    assert sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml")) == sorted(OVERLAYS)
    for overlay in OVERLAYS:
        kinds = {d["kind"] for d in rendered[overlay]}
        assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job", "ConfigMap"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_runs_the_images_gunicorn_behind_nginx_and_is_probed_through_it(rendered, overlay):
    spec = pod_spec(rendered[overlay], "Deployment", "saas-api")
    api, proxy = container(spec, "api"), container(spec, "proxy")
    assert api["image"] == APP_IMAGE[overlay]
    assert "command" not in api and "args" not in api  # the image's CMD: gunicorn -c gunicorn.conf.py wsgi:app
    env = {e["name"]: e["value"] for e in api["env"]}
    assert env["PORT"] == "8000" and env["GUNICORN_BIND"] == "127.0.0.1:8000"
    assert {"ip": "127.0.0.1", "hostnames": ["api"]} in spec["hostAliases"]

    assert api["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    proxy_ports = {p["name"]: p["containerPort"] for p in proxy["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert proxy_ports[api[probe]["httpGet"]["port"]] == 8080
    assert proxy["command"][0] == "nginx" and "/etc/nginx/saas/nginx.conf" in proxy["command"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nginx_in_the_pod_runs_the_same_config_as_compose(rendered, overlay):
    spec = pod_spec(rendered[overlay], "Deployment", "saas-api")
    [volume] = [v for v in spec["volumes"] if v["name"] == "nginx-config"]
    mounted = config_map(rendered[overlay], "saas-nginx")
    assert volume["configMap"]["name"] == mounted["metadata"]["name"]
    assert mounted["data"]["nginx.conf"] == (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    mount = next(m for m in container(spec, "proxy")["volumeMounts"] if m["name"] == "nginx-config")
    assert mount["mountPath"] == "/etc/nginx/saas"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_non_root_read_only_without_capabilities(rendered, overlay):
    for workload in workloads(rendered[overlay]):
        spec = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        if workload["metadata"]["labels"]["app.kubernetes.io/name"] == "saas":
            assert spec["securityContext"]["runAsUser"] == 10001, name  # the Dockerfile's USER
        for c in spec["containers"]:
            context = c["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert context["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert context["capabilities"]["drop"] == ["ALL"], (name, c["name"])
            assert context["runAsNonRoot"] is True, (name, c["name"])
            assert c["resources"]["requests"].keys() == c["resources"]["limits"].keys() == {"cpu", "memory"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_app_containers_write_only_to_an_empty_dir_at_tmp(rendered, overlay):
    for workload in workloads(rendered[overlay]):
        if workload["metadata"]["labels"]["app.kubernetes.io/name"] != "saas":
            continue
        spec = workload["spec"]["template"]["spec"]
        empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for c in spec["containers"]:
            tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1 and tmp[0]["name"] in empty_dirs, (workload["metadata"]["name"], c["name"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_shutdown_leaves_time_to_drain(rendered, overlay):
    api_spec = pod_spec(rendered[overlay], "Deployment", "saas-api")
    api = container(api_spec, "api")
    pre_stop = api["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep" and int(pre_stop[1]) >= 3
    proxy_pre_stop = container(api_spec, "proxy")["lifecycle"]["preStop"]["exec"]["command"]
    assert int(proxy_pre_stop[1]) < int(pre_stop[1])  # nginx stops taking requests before gunicorn
    assert api_spec["terminationGracePeriodSeconds"] > int(pre_stop[1]) + GUNICORN_GRACEFUL_TIMEOUT
    settings = config_map(rendered[overlay], "saas-config")["data"]
    assert int(settings["GUNICORN_GRACEFUL_TIMEOUT"]) == GUNICORN_GRACEFUL_TIMEOUT

    # The longest job is an AI job (saas.ai.service.longest_run), with the overlay's settings.
    ai = config.Config.from_env(settings).ai
    longest_job_seconds = ai.timeout * (ai.max_retries + 1) + 60
    worker_spec = pod_spec(rendered[overlay], "Deployment", "saas-worker")
    assert worker_spec["terminationGracePeriodSeconds"] > longest_job_seconds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_and_migrations_run_the_projects_commands(rendered, overlay):
    worker = container(pod_spec(rendered[overlay], "Deployment", "saas-worker"), "worker")
    assert worker["command"] == ["python", "-m", "saas.worker"]
    assert worker["image"] == APP_IMAGE[overlay]
    job = find(rendered[overlay], "Job", "saas-migrate")
    migrate = container(job["spec"]["template"]["spec"], "migrate")
    assert migrate["command"] == ["sh", "-c", "flask db upgrade && { flask users ensure-superuser || test $? -eq 3; }"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1


def test_keda_example_scales_the_worker_on_the_queues_it_listens_to():
    documents = list(yaml.safe_load_all((K8S / "examples" / "keda-worker-scaledobject.yaml").read_text()))
    scaled = find(documents, "ScaledObject", "saas-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "saas-worker"
    lists = [t["metadata"]["listName"] for t in scaled["spec"]["triggers"] if t["type"] == "redis"]
    assert lists == ["rq:queue:high", "rq:queue:default", "rq:queue:low"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scaling_objects_target_the_api(rendered, overlay):
    documents = rendered[overlay]
    hpa = find(documents, "HorizontalPodAutoscaler", "saas-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "saas-api"}
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert "replicas" not in find(documents, "Deployment", "saas-api")["spec"]  # the HPA owns it
    api_labels = find(documents, "Deployment", "saas-api")["spec"]["template"]["metadata"]["labels"]
    pdb = find(documents, "PodDisruptionBudget", "saas-api")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= api_labels.items()
    service = find(documents, "Service", "saas-api")
    assert service["spec"]["selector"].items() <= api_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_come_from_a_config_map_and_a_secret(rendered, overlay):
    settings = config_map(rendered[overlay], "saas-config")
    data = settings["data"]
    assert data["APP_ENV"] == "production"
    assert data["PROXY_FIX_HOPS"] == "1"
    for name in ("FRONTEND_URL", "ALLOWED_ORIGINS", "LOG_LEVEL", "GUNICORN_WORKERS", "GUNICORN_THREADS"):
        assert data[name], name
    assert not SECRET_NAMES & data.keys()
    for workload in workloads(rendered[overlay]):
        if workload["metadata"]["labels"]["app.kubernetes.io/name"] != "saas":
            continue
        for c in workload["spec"]["template"]["spec"]["containers"]:
            if c["name"] == "proxy":
                continue
            sources = c["envFrom"]
            assert sources[0]["configMapRef"]["name"] == settings["metadata"]["name"]
            assert sources[1]["secretRef"]["name"].startswith("saas-secrets")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_setting_in_the_config_map_and_secrets_is_one_the_app_reads(rendered, overlay):
    settings = config_map(rendered[overlay], "saas-config")["data"]
    assert settings.keys() <= SETTING_NAMES, settings.keys() - SETTING_NAMES
    config.Config.from_env(settings)  # and each value is valid
    assert SECRET_NAMES <= SETTING_NAMES, SECRET_NAMES - SETTING_NAMES
    for secret in (d for d in rendered[overlay] if d["kind"] == "Secret" and d["metadata"]["name"].startswith("saas-secrets")):
        assert secret["data"].keys() <= SECRET_NAMES, secret["data"].keys() - SECRET_NAMES


def test_the_docs_list_the_config_map_and_the_secret_as_they_are():
    text = " ".join((ROOT / "docs" / "operations" / "kubernetes.md").read_text().split())
    config_map_names = re.search(r"The ConfigMap holds (.*?); add ", text).group(1)
    secret_names = re.search(r"The Secret `saas-secrets` holds (.*?) \(empty means unset", text).group(1)
    base = dict(
        line.split("=", 1) for line in (K8S / "base" / "settings.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert set(re.findall(r"`([A-Z_]+)(?:=[^`]*)?`", config_map_names)) == base.keys()
    assert set(re.findall(r"`([A-Z_]+)`", secret_names)) == SECRET_NAMES


def test_production_commits_no_secret(rendered):
    assert [d["metadata"]["name"] for d in rendered["production"] if d["kind"] == "Secret"] == []
    for path in [*(K8S / "base").rglob("*"), *(K8S / "overlays" / "production").rglob("*")]:
        if path.suffix in (".yaml", ".yml"):
            assert all(d.get("kind") != "Secret" for d in yaml.safe_load_all(path.read_text()) if d), path
    tracked = subprocess.run(["git", "ls-files", "deploy"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert "deploy/kubernetes/overlays/production/secrets.env" not in tracked

    example = (K8S / "overlays" / "production" / "secrets.env.example").read_text()
    entries = dict(line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#"))
    assert entries.keys() == SECRET_NAMES
    # Nothing but placeholders: URLs with USER/PASSWORD/HOST and empty values.
    assert all(value == "" or "PASSWORD@HOST" in value for value in entries.values()), entries


def test_dev_runs_its_own_postgres_15_and_redis_7(rendered):
    documents = rendered["dev"]
    assert container(pod_spec(documents, "StatefulSet", "postgres"), "postgres")["image"] == "postgres:15"
    assert container(pod_spec(documents, "Deployment", "redis"), "redis")["image"] == "redis:7"
    secrets = {d["metadata"]["name"].rsplit("-", 1)[0] for d in documents if d["kind"] == "Secret"}
    assert secrets == {"saas-secrets", "saas-dev-postgres"}
