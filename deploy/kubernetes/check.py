"""Render every Kubernetes overlay and validate it: `make k8s`.

    python deploy/kubernetes/check.py [--out build/kubernetes]

For each directory under overlays/: `kubectl kustomize` renders it into OUT/<overlay>.yaml, every
document is validated against the Kubernetes JSON schemas (kubernetes-validate, strict: unknown
fields are errors) for the oldest and the newest Kubernetes version we support, and checkov
scans the result. A checkov finding fails the run unless checkov-skips.yaml lists it with a
reason; a listed skip that matches no finding fails it too. Exits non-zero on any problem.

The tools are the project's pinned ones (make k8s-tools): tools/bin/kubectl and
tools/checkov/bin/checkov. KUBECTL and CHECKOV override the paths.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OVERLAYS = HERE / "overlays"
SKIPS = HERE / "checkov-skips.yaml"
KUBECTL = Path(os.environ.get("KUBECTL") or HERE / "tools" / "bin" / "kubectl")
CHECKOV = Path(os.environ.get("CHECKOV") or HERE / "tools" / "checkov" / "bin" / "checkov")
# An old release still run by managed clusters on extended support, and the newest one the
# bundled schemas know: the manifests use nothing newer than the first.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())


def overlay_names():
    return sorted(path.parent.name for path in OVERLAYS.glob("*/kustomization.yaml"))


def _tool(path, make_target="k8s-tools"):
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `make {make_target}`")
    return str(path)


def render(overlay, out_dir):
    """Render one overlay with kustomize; returns the path of the written manifest."""
    result = subprocess.run(
        [_tool(KUBECTL), "kustomize", str(OVERLAYS / overlay)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"kustomize failed for {overlay}:\n{result.stderr}")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{overlay}.yaml"
    path.write_text(result.stdout)
    return path


def schema_errors(path):
    """Schema validation problems of every document in ``path``, as strings."""
    errors = []
    for document in yaml.safe_load_all(path.read_text()):
        name = f"{document.get('kind')}/{document.get('metadata', {}).get('name')}"
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                errors.append(f"{path.name}: {name} (Kubernetes {version}): {error.message} at {list(error.path)}")
            except kubernetes_validate.SchemaNotFoundError as error:
                errors.append(f"{path.name}: {name} (Kubernetes {version}): no schema: {error}")
    return errors


def load_skips():
    skips = yaml.safe_load(SKIPS.read_text())
    for skip in skips:
        if not str(skip.get("reason", "")).strip():
            raise SystemExit(f"{SKIPS.name}: {skip.get('check')} has no reason")
    return skips


def _skipped(finding, skips):
    for skip in skips:
        if skip["check"] == finding["check_id"] and (
            skip["resources"] == "all" or finding["resource"] in skip["resources"]
        ):
            return skip
    return None


def scan(paths):
    """Run checkov over ``paths``; returns (unexplained findings, stale skip entries)."""
    command = [_tool(CHECKOV), "--framework", "kubernetes", "--quiet", "--compact", "--skip-download", "-o", "json"]
    for path in paths:
        command += ["-f", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "LOG_LEVEL": "WARNING"})
    try:
        reports = json.loads(result.stdout)
    except ValueError:
        raise SystemExit(f"checkov did not report (exit {result.returncode}):\n{result.stderr[-4000:]}")
    reports = reports if isinstance(reports, list) else [reports]
    failed = [finding for report in reports for finding in report["results"]["failed_checks"]]
    if any(report["summary"]["parsing_errors"] for report in reports):
        raise SystemExit(f"checkov could not parse a manifest: {[r['summary'] for r in reports]}")

    skips = load_skips()
    unexplained = [
        f"{f['check_id']} {f['check_name']}: {f['resource']} ({Path(f['file_path']).name})"
        for f in failed
        if _skipped(f, skips) is None
    ]
    used = {id(_skipped(f, skips)) for f in failed}
    stale = []
    for skip in skips:
        if id(skip) not in used:
            stale.append(f"{skip['check']} matches no finding")
        elif skip["resources"] != "all":
            matched = {f["resource"] for f in failed if f["check_id"] == skip["check"]}
            stale += [f"{skip['check']} for {name} matches no finding" for name in skip["resources"] if name not in matched]
    return unexplained, stale


def check(out_dir):
    """Render, validate and scan every overlay; returns (rendered paths, problems)."""
    paths = [render(overlay, out_dir) for overlay in overlay_names()]
    problems = [error for path in paths for error in schema_errors(path)]
    unexplained, stale = scan(paths)
    problems += [f"checkov: {line}" for line in unexplained]
    problems += [f"{SKIPS.name}: {line}" for line in stale]
    return paths, problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "kubernetes")
    args = parser.parse_args()
    paths, problems = check(args.out)
    for path in paths:
        print(f"rendered {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    print(f"schemas: Kubernetes {', '.join(KUBERNETES_VERSIONS)} (strict); checkov: skips in {SKIPS.relative_to(ROOT)}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    print("ok: no schema errors, no unexplained checkov findings")


if __name__ == "__main__":
    main()
