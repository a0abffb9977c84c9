"""docker-compose.yml, the rendered Kubernetes manifests and the image test run the image alike.

tests/test_image.py runs the image's CMD for the api, compose's commands for the migrate step and
the worker, with the user, hardening and probe paths of tests/image_support.py. Here every command,
user, port and probe path that compose and the manifests give the app's containers must be one of
those, so none of the three can change without the others. (The third-party containers, nginx,
PostgreSQL, Redis and Mailpit, are not the image: tests/test_proxy.py and test_kubernetes.py
cover nginx.) Needs `kubectl kustomize` from the pinned Kubernetes tools (`make k8s-tools`).
"""
import re
import runpy

import pytest

from tests.image_support import (
    APP_SERVICES,
    CAP_DROP,
    HARDENING,
    PROBE_PATHS,
    ROOT,
    RUN_AS,
    SECURITY_OPT,
    TMPFS,
    compose_command,
    compose_services,
)

pytestmark = pytest.mark.k8s

CHECK = runpy.run_path(str(ROOT / "deploy" / "kubernetes" / "check.py"))
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def dockerfile_instruction(name):
    """The arguments of the runtime stage's last ``name`` instruction, continuation lines joined."""
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    found = [line.split(None, 1)[1].strip() for line in lines if line.split(None, 1)[:1] == [name]]
    assert found, f"the Dockerfile has no {name}"
    return found[-1]


IMAGE_PORT = dockerfile_instruction("EXPOSE")


def probed_paths(command):
    """The paths of the app's that a probe command asks for (at least one)."""
    paths = set(re.findall(r"/health(?:/[a-z]+)?", command))
    assert paths, f"no path of the app's in {command!r}"
    return paths


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    """{overlay: [documents]}, rendered by `kubectl kustomize` as `make k8s` renders them."""
    import yaml

    out = tmp_path_factory.mktemp("kubernetes")
    return {overlay: list(yaml.safe_load_all(CHECK["render"](overlay, out).read_text())) for overlay in CHECK["overlay_names"]()}


def app_containers(documents):
    """(workload, pod spec, container) for every container that runs the app's image."""
    for workload in documents:
        if workload["kind"] not in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"):
            continue
        template = workload["spec"].get("jobTemplate", workload)["spec"]["template"]
        for container in template["spec"]["containers"] + template["spec"].get("initContainers", []):
            if container["image"].rsplit("/", 1)[-1].split(":")[0] == "saas":
                yield workload, template["spec"], container


def test_the_test_runs_the_images_user_and_hardening():
    assert dockerfile_instruction("USER") == RUN_AS
    assert HARDENING == ("--read-only", "--tmpfs", TMPFS, "--user", RUN_AS, "--cap-drop", CAP_DROP, "--security-opt", SECURITY_OPT)
    healthcheck = dockerfile_instruction("HEALTHCHECK")
    assert probed_paths(healthcheck) <= set(PROBE_PATHS), healthcheck


def test_compose_runs_the_image_only_as_the_test_does():
    services = compose_services()
    built = {name for name, service in services.items() if "build" in service}
    assert built == set(APP_SERVICES)
    for name in APP_SERVICES:
        service = services[name]
        assert "entrypoint" not in service, name
        assert service["user"] == RUN_AS, name
        assert service["read_only"] is True, name
        assert service["tmpfs"] == [TMPFS], name
        assert service["cap_drop"] == [CAP_DROP], name
        assert service["security_opt"] == [SECURITY_OPT], name
    # The api runs the image's CMD; the test runs compose's own commands of the migrate step and
    # the worker, whatever they are.
    assert "command" not in services["api"]
    assert {"command"} <= services["migrate"].keys() & services["worker"].keys()
    assert services["api"]["expose"] == [IMAGE_PORT]
    # Probes: the api's is the command the test runs in its api container; nginx's reaches the api.
    assert services["api"]["healthcheck"]["test"][0] == "CMD"
    for name in ("api", "proxy"):
        assert probed_paths(" ".join(services[name]["healthcheck"]["test"])) <= set(PROBE_PATHS), name


@pytest.mark.parametrize("overlay", CHECK["overlay_names"]())
def test_kubernetes_runs_the_image_only_as_the_test_does(manifests, overlay):
    commands = {"api": None, "worker": compose_command("worker"), "migrate": compose_command("migrate")}
    seen = set()
    for workload, pod, container in app_containers(manifests[overlay]):
        where = (workload["metadata"]["name"], container["name"])
        seen.add(container["name"])
        assert container["name"] in commands, where
        assert container.get("command") == commands[container["name"]], where
        assert "args" not in container, where

        context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
        assert f"{context['runAsUser']}:{context['runAsGroup']}" == RUN_AS, where
        assert context["readOnlyRootFilesystem"] is True, where
        assert context["capabilities"]["drop"] == [CAP_DROP], where
        assert context["allowPrivilegeEscalation"] is False, where  # no-new-privileges
        empty_dirs = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
        assert [m["name"] in empty_dirs for m in container["volumeMounts"] if m["mountPath"] == TMPFS] == [True], where

        env = {variable["name"]: variable.get("value") for variable in container.get("env", [])}
        if container["name"] == "api":
            # gunicorn on the image's port, told by the variables the test sets.
            assert env["PORT"] == IMAGE_PORT and env["GUNICORN_BIND"].rsplit(":", 1)[1] == IMAGE_PORT, where
        for probe in PROBES:
            if probe in container:
                assert container[probe]["httpGet"]["path"] in PROBE_PATHS, (where, probe)
        # The probes of the api pod are on nginx's port and reach the api: their paths count too.
        for other in pod["containers"]:
            for probe in PROBES:
                if "httpGet" in other.get(probe, {}):
                    assert other[probe]["httpGet"]["path"] in PROBE_PATHS, (where, other["name"], probe)
    assert seen == set(commands)

