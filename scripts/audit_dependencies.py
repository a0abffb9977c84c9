"""pip-audit of requirements-dev.lock (every runtime and dev package) against PyPI's vulnerability data.

`make audit` runs it, and `make test` before the tests. It is pip-audit's own command line with the
PyPI service (`--vulnerability-service pypi --disable-pip -r requirements-dev.lock`); extra arguments
go to pip-audit. It adds three things:

- pip-audit reads a release's known vulnerabilities from PyPI's per-release document
  (`/pypi/NAME/VERSION/json`), which not every network reaches: this project's machines and CI
  reach only the project document (`/pypi/NAME/json`). That one carries the vulnerabilities of the
  project's latest release, so where the locked version is the latest they are read from there.
- A locked version below the latest cannot be audited that way: it is listed, loudly, as not
  audited, with the reason it stays behind when HELD_BACK gives one. It does not fail the audit:
  upstream releases come out every day, and a lock that was audited must not start failing CI
  because a newer release appeared (`make lock LOCK_ARGS=--upgrade` then audits everything).
- PyPI not answering, a release PyPI does not have, or a requirement pip-audit cannot resolve
  fails, with what to do. Never a silent pass.
"""
import sys
from pathlib import Path

import requests
from packaging.version import InvalidVersion, Version
from pip_audit import _cli
from pip_audit._service.interface import ConnectionError as ServiceConnectionError
from pip_audit._service.interface import ServiceError, SkippedDependency
from pip_audit._service.pypi import PyPIService

ROOT = Path(__file__).resolve().parent.parent
LOCK = "requirements-dev.lock"
PYPI_JSON = "https://pypi.org/pypi"

# Known vulnerabilities accepted on purpose, id -> why (no fixed release exists, the vulnerable code
# is never reached...). Each is passed to pip-audit as --ignore-vuln. None today.
IGNORED_VULNS: dict[str, str] = {}

# Packages locked below their latest release on purpose, name -> why. Only where the per-release
# document is out of reach do they go unaudited, and the audit then names them.
HELD_BACK = {
    "deprecated": "3.x needs Python 3.12 and the project runs on 3.11 (limits needs deprecated>=1.2)",
    "jsonschema-rs": "schemathesis 4.32.5, its latest release, needs jsonschema-rs<0.61",
    "pymdown-extensions": "13.x needs Python 3.11.5+ and the locks resolve for every Python 3.11 "
    "(mkdocs-material needs pymdown-extensions>=11.0.1)",
    "rich": "flask-limiter 4.1.1's [cli] extra (the `flask limiter` commands) needs rich<15",
    "rq": "rq 3 is a major release: moving the workers to it is a change of its own",
}

UNREACHABLE = """
The dependency audit could not read PyPI's vulnerability data, so it cannot say whether the locked
packages have known vulnerabilities. Nothing is known to be wrong with the code or the locks.
What to do: check that this machine reaches https://pypi.org/pypi/ (a proxy needs HTTPS_PROXY),
then run `make audit` again. `make test AUDIT=0` runs the tests without the audit, and says so."""


class _Canned:
    """A session that answers every GET with one response already fetched."""

    def __init__(self, response):
        self.response = response

    def get(self, url, **kwargs):
        return self.response


class FallbackPyPIService(PyPIService):
    """pip-audit's PyPI service, reading the project document where the release's is out of reach."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.audited = {}  # name -> version, every package whose vulnerabilities were read
        self.from_project = set()  # names read from the project document (their latest release)
        self.held_back = {}  # name -> (version, latest): not audited
        self.skipped = []  # what pip-audit itself could not resolve (a URL or editable requirement)
        self.unreachable = False

    def query(self, spec):
        if spec.is_skipped():
            self.skipped.append(f"{spec.name}: {spec.skip_reason}")
            return spec, []
        try:
            result, vulns = super().query(spec)
            if result.is_skipped():  # the per-release document answered 404
                result, vulns = self._from_project(spec)
        except (requests.RequestException, ServiceError) as error:
            self.unreachable = True
            raise ServiceConnectionError(f"PyPI did not answer about {spec.name} {spec.version}: {error}") from error
        if not result.is_skipped():
            self.audited[spec.canonical_name] = spec.version
        return result, vulns

    def _from_project(self, spec):
        name, version = spec.canonical_name, spec.version
        response = self.session.get(url=f"{PYPI_JSON}/{name}/json", timeout=self.timeout)
        response.raise_for_status()
        project = response.json()
        latest = Version(project["info"]["version"])
        if latest == version:
            self.from_project.add(name)
            session, self.session = self.session, _Canned(response)
            try:
                return super().query(spec)
            finally:
                self.session = session
        if version not in _versions(project.get("releases", {})):
            raise _Fatal(f"{name} {version} is not on PyPI: the lock names a release PyPI does not have")
        self.held_back[name] = (version, latest)
        reason = HELD_BACK.get(name, f"a newer release came out; `make lock LOCK_ARGS='--upgrade-package {name}'`")
        return SkippedDependency(name=spec.name, skip_reason=f"NOT AUDITED below {latest}: {reason}"), []


class _Fatal(Exception):
    """The audit cannot be complete, for a reason the message explains."""


def _versions(releases):
    found = set()
    for text in releases:
        try:
            found.add(Version(text))
        except InvalidVersion:
            pass
    return found


def _problems(service):
    """Why the audit, though pip-audit finished, is not complete."""
    return [f"not audited: {skipped}" for skipped in service.skipped]


def _stale_settings(service):
    """HELD_BACK entries that no longer apply (said, not failed: the lock is still sound)."""
    for name in HELD_BACK:
        if name in service.from_project:
            yield f"{name} is at its latest release now: its HELD_BACK entry can go"
        elif name not in service.audited and name not in service.held_back:
            yield f"{name} is not in {LOCK} any more: its HELD_BACK entry can go"


def main(args):
    services = []

    def make_service(**kwargs):
        services.append(FallbackPyPIService(**kwargs))
        return services[-1]

    _cli.PyPIService = make_service
    ignored = [flag for vuln in IGNORED_VULNS for flag in ("--ignore-vuln", vuln)]
    sys.argv = [
        "pip-audit", "--vulnerability-service", "pypi", "--disable-pip", "--progress-spinner", "off",
        "-r", str(ROOT / LOCK), *ignored, *args,
    ]
    try:
        _cli.audit()
        status = 0
    except SystemExit as exit:
        status = exit.code or 0
    except _Fatal as error:
        print(f"pip-audit: {error}", file=sys.stderr)
        return 1
    service = services[0]
    if service.unreachable:
        print(UNREACHABLE, file=sys.stderr)
        return status or 1
    print(
        f"Audited {len(service.audited)} packages of {LOCK}"
        + (
            f" ({len(service.from_project)} through the latest release's data: the per-release documents are out of reach)"
            if service.from_project
            else ""
        )
        + ".",
        file=sys.stderr,
    )
    for name, (version, latest) in sorted(service.held_back.items()):
        reason = HELD_BACK.get(name, "a newer release came out since the lock was made (make lock upgrades)")
        print(f"NOT AUDITED: {name} {version} (latest {latest}): {reason}", file=sys.stderr)
    for note in _stale_settings(service):
        print(f"pip-audit: note: {note}", file=sys.stderr)
    for vuln, reason in IGNORED_VULNS.items():
        print(f"Ignored on purpose: {vuln}: {reason}", file=sys.stderr)
    problems = _problems(service)
    for problem in problems:
        print(f"pip-audit: {problem}", file=sys.stderr)
    return status or (1 if problems else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
