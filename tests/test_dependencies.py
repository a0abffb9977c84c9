"""The dependency locks: in step with the pins people edit, complete, hashed, PyPI-only, and what
is installed. No server needed; `make lock` rewrites the locks when one of these fails."""
import importlib.util
import json
import re
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import pytest
import requests
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from pip_audit._service.interface import ConnectionError as ServiceConnectionError
from pip_audit._service.interface import ResolvedDependency

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_LOCK, DEV_LOCK = "requirements.lock", "requirements-dev.lock"
CHECKOV = "deploy/kubernetes/tools/requirements-checkov"  # checkov's own virtualenv (make k8s-tools)
# Each file of direct pins and the lock made from it.
LOCKS = {"requirements.txt": RUNTIME_LOCK, "requirements-dev.txt": DEV_LOCK, f"{CHECKOV}.txt": f"{CHECKOV}.lock"}
RELOCK = "run `make lock` after editing requirements*.txt, and commit the locks"
SHA256 = re.compile(r"--hash=sha256:[0-9a-f]{64}")


class Locked(NamedTuple):
    name: str
    version: str
    requirement: Requirement
    hashes: list
    via: list


def direct_pins(filename):
    """{name: Requirement} of a requirements file, including the files it pulls in with -r."""
    pins = {}
    for line in (ROOT / filename).read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            pins.update(direct_pins(line[3:].strip()))
            continue
        assert not line.startswith("-"), f"{filename}: {line!r}: the locks are made from plain pins"
        requirement = Requirement(line)
        pins[canonicalize_name(requirement.name)] = requirement
    return pins


def lock_entries(filename):
    """Every entry of a lock: `name==version [; marker]`, its hashes and its `# via` parents."""
    entries = []
    for raw in (ROOT / filename).read_text().splitlines():
        line = raw.strip().removesuffix("\\").strip()
        if not line or (not raw[0].isspace() and line.startswith("#")):
            continue  # blank or the header
        if not raw[0].isspace():
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{filename}: {line!r} is not pinned with =="
            entries.append(
                Locked(canonicalize_name(requirement.name), specifier.version, requirement, [], [])
            )
        elif line.startswith("--hash="):
            entries[-1].hashes.append(line)
        elif line.startswith("#"):
            parent = line.lstrip("#").strip().removeprefix("via").strip()
            if parent:
                entries[-1].via.append(parent)
        else:
            pytest.fail(f"{filename}: unexpected line {raw!r}")
    assert entries, f"{filename} locks nothing"
    return entries


def versions(entries):
    found = {}
    for entry in entries:
        found.setdefault(entry.name, set()).add(entry.version)
    return found


@pytest.mark.parametrize("requirements", LOCKS)
def test_every_direct_dependency_is_pinned_to_one_version(requirements):
    for name, requirement in direct_pins(requirements).items():
        operators = [specifier.operator for specifier in requirement.specifier]
        assert operators == ["=="], f"{requirements}: {requirement} must be pinned with =="


@pytest.mark.parametrize(("requirements", "lock"), LOCKS.items())
def test_every_direct_pin_is_locked_at_its_version(requirements, lock):
    locked = versions(lock_entries(lock))
    for name, requirement in direct_pins(requirements).items():
        (pin,) = requirement.specifier
        assert locked.get(name) == {pin.version}, (
            f"{requirements} pins {requirement} but {lock} has {name} {sorted(locked.get(name, []))}: {RELOCK}"
        )


@pytest.mark.parametrize(("requirements", "lock"), LOCKS.items())
def test_the_lock_holds_nothing_that_is_no_longer_asked_for(requirements, lock):
    # A direct pin removed from requirements*.txt, or a package that only a removed one needed.
    entries = lock_entries(lock)
    locked = versions(entries)
    files = {f"-r {name}": direct_pins(name) for name in LOCKS} | {f"-c {RUNTIME_LOCK}": locked}
    for entry in entries:
        assert entry.via, f"{lock}: {entry.name} says nothing of what needs it: {RELOCK}"
        for parent in entry.via:
            if parent in files:
                assert entry.name in files[parent], f"{lock}: {entry.name} is no longer in {parent[3:]}: {RELOCK}"
            else:
                assert canonicalize_name(parent) in locked, (
                    f"{lock}: {entry.name} is there for {parent}, which is not locked: {RELOCK}"
                )


@pytest.mark.parametrize("lock", LOCKS.values())
def test_every_lock_entry_has_a_sha256_hash(lock):
    for entry in lock_entries(lock):
        assert entry.hashes and all(SHA256.fullmatch(h) for h in entry.hashes), (
            f"{lock}: {entry.name} {entry.version} has no sha256 hash: {RELOCK}"
        )


@pytest.mark.parametrize("lock", LOCKS.values())
def test_the_locks_name_packages_from_pypi_only(lock):
    # No index, find-links, URL or path: everything comes from PyPI by name, checked by hash.
    for entry in lock_entries(lock):
        assert entry.requirement.url is None, f"{lock}: {entry.name} comes from {entry.requirement.url}"
    text = (ROOT / lock).read_text()
    for forbidden in ("--index-url", "--extra-index-url", "--find-links", "file:", "-e "):
        assert forbidden not in text, f"{lock} mentions {forbidden}"


def test_the_dev_lock_has_every_runtime_package_at_the_same_version():
    runtime, dev = lock_entries(RUNTIME_LOCK), lock_entries(DEV_LOCK)
    dev_versions = versions(dev)
    for entry in runtime:
        assert dev_versions.get(entry.name) == {entry.version}, (
            f"{entry.name} is {entry.version} in {RUNTIME_LOCK} but {sorted(dev_versions.get(entry.name, []))} "
            f"in {DEV_LOCK}: {RELOCK}"
        )


def test_the_installed_packages_are_the_dev_locks():
    # The test environment is `make dev-deps`'s: every locked package for this platform, as locked.
    wrong = []
    for entry in lock_entries(DEV_LOCK):
        if entry.requirement.marker is not None and not entry.requirement.marker.evaluate():
            continue
        try:
            installed = metadata.version(entry.name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != entry.version:
            wrong.append(f"{entry.name} {installed or 'missing'} (locked {entry.version})")
    assert not wrong, "installed packages differ from the lock (run `make dev-deps`): " + ", ".join(wrong)


def _commands(path):
    """The lines of a Makefile or Dockerfile with continuation lines joined."""
    return (ROOT / path).read_text().replace("\\\n", " ").splitlines()


def test_make_installs_the_locks_with_hashes_and_reinstalls_when_they_change():
    lines = _commands("Makefile")
    installs = [line.split() for line in lines if "bin/pip install" in line and "$(LOCK_TOOLS)" not in line]
    assert len(installs) == 3, installs
    for words in installs:
        assert "--require-hashes" in words, words
    assert sorted(words[words.index("-r") + 1] for words in installs) == sorted(
        [RUNTIME_LOCK, DEV_LOCK, "$(K8S_TOOLS)/requirements-checkov.lock"]
    )
    stamps = {
        line.split(":")[0]: line.split(":")[1].split("|")[0].split()
        for line in lines
        if line.startswith(("$(VENV)/.installed", "$(CHECKOV_VENV)/.installed"))
    }
    assert stamps == {
        "$(VENV)/.installed-runtime": [RUNTIME_LOCK],
        "$(VENV)/.installed-dev": [DEV_LOCK],
        "$(CHECKOV_VENV)/.installed": ["$(K8S_TOOLS)/requirements-checkov.lock"],
    }


def test_the_image_installs_the_runtime_lock_with_hashes():
    lines = _commands("Dockerfile")
    assert any(line.split()[:2] == ["COPY", RUNTIME_LOCK] for line in lines)
    (install,) = [line for line in lines if "pip install" in line]
    assert "--require-hashes" in install.split() and f"/tmp/{RUNTIME_LOCK}" in install.split()


# --- scripts/audit_dependencies.py: its decisions, against canned PyPI answers (the real audit runs
# in `make test` and needs the network) ---

def _audit_module():
    spec = importlib.util.spec_from_file_location("audit_dependencies", ROOT / "scripts" / "audit_dependencies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _response(url, status, body=None):
    response = requests.Response()
    response.url, response.status_code, response.reason = url, status, "canned"
    response._content = json.dumps(body).encode() if body is not None else b""
    return response


class CannedPyPI:
    """PyPI's JSON documents by URL; a URL it does not know is a 404, as from this network."""

    def __init__(self, documents=None, error=None):
        self.documents, self.error = documents or {}, error

    def get(self, url, **kwargs):
        if self.error:
            raise self.error
        return _response(url, 200, self.documents[url]) if url in self.documents else _response(url, 404)


VULN = {"id": "PYSEC-0000-1", "aliases": ["CVE-0000-1"], "fixed_in": ["9.9"], "summary": "bad", "withdrawn": None}


def _project(latest, releases, vulns=()):
    return {"info": {"version": latest}, "releases": {v: [] for v in releases}, "vulnerabilities": list(vulns)}


@pytest.fixture
def audit(tmp_path):
    module = _audit_module()

    def query(name, version, documents=None, error=None):
        service = module.FallbackPyPIService(cache_dir=tmp_path, timeout=1)
        service.session = CannedPyPI(documents, error)
        result, vulns = service.query(ResolvedDependency(name, Version(version)))
        return service, result, vulns

    query.module = module
    return query


def test_audit_reads_the_release_document_when_it_is_reachable(audit):
    documents = {"https://pypi.org/pypi/pkg/1.0/json": {"info": {}, "vulnerabilities": [VULN]}}
    service, result, vulns = audit("pkg", "1.0", documents)
    assert [v.id for v in vulns] == ["PYSEC-0000-1"] and service.audited == {"pkg": Version("1.0")}
    assert not service.from_project


def test_audit_reads_the_latest_release_from_the_project_document(audit):
    documents = {"https://pypi.org/pypi/pkg/json": _project("2.0", ["1.0", "2.0"], [VULN])}
    service, result, vulns = audit("pkg", "2.0", documents)
    assert [v.id for v in vulns] == ["PYSEC-0000-1"] and service.from_project == {"pkg"}


def test_audit_lists_a_release_below_the_latest_as_not_audited_without_failing(audit):
    """A newer upstream release must not turn an audited lock into a failing CI run."""
    documents = {"https://pypi.org/pypi/pkg/json": _project("2.0", ["1.0", "2.0"])}
    service, result, vulns = audit("pkg", "1.0", documents)
    assert result.is_skipped() and "NOT AUDITED below 2.0" in result.skip_reason
    assert "--upgrade-package pkg" in result.skip_reason
    assert service.held_back == {"pkg": (Version("1.0"), Version("2.0"))} and not audit.module._problems(service)


def test_audit_lists_a_held_back_package_as_not_audited(audit):
    documents = {"https://pypi.org/pypi/rq/json": _project("3.0.0", ["2.12.0", "3.0.0"])}
    service, result, vulns = audit("rq", "2.12.0", documents)
    assert result.is_skipped() and result.skip_reason.startswith("NOT AUDITED below 3.0.0: rq 3 is a major release")
    assert service.held_back == {"rq": (Version("2.12.0"), Version("3.0.0"))} and not service.audited


def test_audit_refuses_a_release_pypi_does_not_have(audit):
    documents = {"https://pypi.org/pypi/pkg/json": _project("2.0", ["2.0"])}
    with pytest.raises(audit.module._Fatal, match="not on PyPI"):
        audit("pkg", "1.5", documents)


def test_audit_fails_loudly_when_pypi_cannot_be_reached(audit):
    with pytest.raises(ServiceConnectionError, match="PyPI did not answer about pkg 1.0"):
        audit("pkg", "1.0", error=requests.ConnectionError("refused"))


def test_audit_notes_held_back_entries_that_are_no_longer_needed(audit):
    service, _, _ = audit("rq", "3.0.0", {"https://pypi.org/pypi/rq/json": _project("3.0.0", ["3.0.0"])})
    notes = list(audit.module._stale_settings(service))
    assert "rq is at its latest release now: its HELD_BACK entry can go" in notes
    assert "deprecated is not in requirements-dev.lock any more: its HELD_BACK entry can go" in notes
    assert not audit.module._problems(service)
