#!/usr/bin/env bash
# `make image`: build the Dockerfile as users do, tagged IMAGE (default saas:dev).
#   scripts/image.sh [IMAGE]
# The base is the Dockerfile's PYTHON_IMAGE build argument: the official python:3.11-slim-bookworm
# (or $PYTHON_IMAGE), used when it is here or can be pulled. When it cannot (no registry reachable)
# and no base was asked for, the image is built on a stand-in: Debian bookworm's own Python 3.11,
# made from Debian's packages with mmdebstrap, with the machine's CA bundle for pip (PIP_CERT),
# imported and kept as saas-python-standin:<recipe hash> (built once per machine and recipe).
# A Docker daemon is started when none answers (scripts/docker-daemon.sh), and stopped after.
# Writes the image id to build/image-id (tests/test_image.py runs that image), the build's output
# to build/image-build.log, and prints the image's size.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGE="${1:-saas:dev}"
OFFICIAL_BASE=python:3.11-slim-bookworm
BASE="${PYTHON_IMAGE:-$OFFICIAL_BASE}"
STANDIN_REPO=saas-python-standin
# The stand-in: what the official image has that the Dockerfile uses (python, python -m venv, pip
# through venv, CA certificates), with no documentation, manuals or translations.
STANDIN_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
STANDIN_OPTIONS=(
  --variant=minbase --include="$STANDIN_PACKAGES"
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --aptopt='Acquire::Languages "none"'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*'
  --customize-hook='mkdir -p "$1"/usr/local/share/saas-standin'
  --customize-hook='copy-in /etc/ssl/certs/ca-certificates.crt /usr/local/share/saas-standin/'
)
HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

say() { echo "image: $*" >&2; }
die() { echo "image: $*" >&2; exit 1; }

# --- the daemon -------------------------------------------------------------------------------
export SAAS_DOCKERD_CALLER=$$
trap 'bash scripts/docker-daemon.sh stop' EXIT
bash scripts/docker-daemon.sh start

# --- the base ---------------------------------------------------------------------------------
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

standin_tag() {
  local recipe
  recipe="$(printf '%s\n' bookworm "${STANDIN_OPTIONS[@]}"; cat "$HOST_CA_BUNDLE" 2>/dev/null || true)"
  echo "$STANDIN_REPO:bookworm-$(printf '%s' "$recipe" | sha256sum | cut -c1-12)"
}

build_standin() {  # build_standin <tag>
  local tag="$1" tarball
  [ "$(id -u)" -eq 0 ] || die "building the stand-in base needs root (mmdebstrap): run as root, or docker pull $OFFICIAL_BASE"
  if ! command -v mmdebstrap >/dev/null; then
    say "installing Debian's mmdebstrap"
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    apt-get update -qq
    apt-get install -y -qq mmdebstrap >/dev/null
  fi
  tarball="$(mktemp --suffix=.tar)"
  # shellcheck disable=SC2064
  trap "rm -f '$tarball'; bash scripts/docker-daemon.sh stop" EXIT
  say "building the stand-in base $tag from Debian bookworm ($STANDIN_PACKAGES)"
  mkdir -p build
  mmdebstrap "${STANDIN_OPTIONS[@]}" bookworm "$tarball" http://deb.debian.org/debian >build/standin-base.log 2>&1 \
    || { tail -n 30 build/standin-base.log >&2; die "mmdebstrap failed (its output: build/standin-base.log)"; }
  docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/usr/local/share/saas-standin/ca-certificates.crt' \
    --change "LABEL org.opencontainers.image.title=$STANDIN_REPO" \
    --change 'CMD ["python"]' \
    "$tarball" "$tag" >/dev/null
  rm -f "$tarball"
  # Earlier stand-ins (another recipe or CA bundle) go, unless an image still uses them.
  docker image ls --format '{{.Repository}}:{{.Tag}}' "$STANDIN_REPO" | grep -vxF "$tag" \
    | xargs -r docker image rm >/dev/null 2>&1 || true
}

if have_image "$BASE"; then
  say "base $BASE"
elif docker pull -q "$BASE" >/dev/null 2>&1; then
  say "base $BASE (pulled)"
elif [ -n "${PYTHON_IMAGE:-}" ]; then
  die "the base $BASE (PYTHON_IMAGE) is not here and cannot be pulled"
else
  BASE="$(standin_tag)"
  say "the official base $OFFICIAL_BASE cannot be pulled (no registry reachable here):"
  say "building on a stand-in made from Debian's packages instead: $BASE"
  have_image "$BASE" || build_standin "$BASE"
fi

# --- the image --------------------------------------------------------------------------------
mkdir -p build
# BuildKit where the buildx plugin is installed (as on Docker Desktop); the classic builder otherwise.
if docker buildx version >/dev/null 2>&1; then export DOCKER_BUILDKIT=1; else export DOCKER_BUILDKIT=0; fi
# --network host: the daemon may have no bridge network (scripts/docker-daemon.sh).
say "docker build (its output: build/image-build.log)"
docker build --network host --build-arg PYTHON_IMAGE="$BASE" --iidfile build/image-id -t "$IMAGE" . \
  >build/image-build.log 2>&1 || { tail -n 30 build/image-build.log >&2; die "docker build failed"; }
# Images of earlier builds that lost their tag go, once they are an hour old (a run started
# meanwhile may be testing one).
docker image prune -f --filter label=org.opencontainers.image.title=saas --filter until=1h >/dev/null
size="$(docker image inspect -f '{{.Size}}' "$IMAGE")"
echo "image: $IMAGE ($(cut -c8-19 build/image-id)) on $BASE: $((size / 1000 / 1000)) MB uncompressed"
