#!/usr/bin/env bash
# Vendor the Swagger UI and ReDoc files that /docs and /redoc load, from the npm registry.
#   scripts/vendor-docs-assets.sh [SWAGGER_UI_VERSION [REDOC_VERSION]]
# Replaces saas/web/docs_assets/{swagger-ui,redoc}/ with the files the pages need, unchanged from
# the packages, and rewrites saas/web/docs_assets/SOURCES.md (versions, integrity, licenses).
# An upgrade: run it with the new versions, check the pages (make check-docs), commit.
set -euo pipefail

SWAGGER_UI_VERSION="${1:-5.35.0}"
REDOC_VERSION="${2:-2.5.4}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ASSETS="$ROOT/saas/web/docs_assets"
# What the pages load, plus the licenses that must travel with it.
SWAGGER_UI_FILES=(swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt)
REDOC_FILES=(bundles/redoc.standalone.js bundles/redoc.standalone.js.LICENSE.txt LICENSE)

die() { echo "vendor-docs-assets: $*" >&2; exit 1; }

if ! command -v npm >/dev/null; then
  [ "$(id -u)" -eq 0 ] || die "npm is missing; install it (Debian package npm)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# fetch <package> <version> <target dir> <files...>: npm pack checks the tarball's integrity.
fetch() {
  local package="$1" version="$2" target="$3"; shift 3
  (cd "$WORK" && npm pack "$package@$version" --json --silent >"$package.json")
  mkdir -p "$WORK/$package"
  tar -xzf "$WORK/$package-$version.tgz" -C "$WORK/$package"
  rm -rf "$target"
  mkdir -p "$target"
  local file
  for file in "$@"; do
    [ -f "$WORK/$package/package/$file" ] || die "$package@$version has no $file"
    cp "$WORK/$package/package/$file" "$target/"
  done
}

# field <package> <name>: a field of npm pack's report on the package.
field() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[0][sys.argv[2]])' "$WORK/$1.json" "$2"
}

# license <package>: the license the package declares.
license() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["license"])' "$WORK/$1/package/package.json"
}

listing() {  # listing <dir>: one line per file with its SHA-256
  (cd "$1" && sha256sum -- * | sed 's/^\([0-9a-f]*\)  \(.*\)$/| `\2` | `\1` |/')
}

fetch swagger-ui-dist "$SWAGGER_UI_VERSION" "$ASSETS/swagger-ui" "${SWAGGER_UI_FILES[@]}"
fetch redoc "$REDOC_VERSION" "$ASSETS/redoc" "${REDOC_FILES[@]}"

cat >"$ASSETS/SOURCES.md" <<EOF
# Vendored documentation assets

Written by \`scripts/vendor-docs-assets.sh\`; do not edit by hand. The files are copied unchanged
from the npm packages below, so that \`/docs\` and \`/redoc\` work offline and load nothing from a
CDN. \`swagger-ui-init.js\` (next to this file) is the project's own.

| directory | npm package | version | license | tarball integrity |
|---|---|---|---|---|
| \`swagger-ui/\` | [swagger-ui-dist](https://www.npmjs.com/package/swagger-ui-dist) | $SWAGGER_UI_VERSION | $(license swagger-ui-dist) (\`swagger-ui/LICENSE\`, \`NOTICE\`; bundled libraries in \`swagger-ui-bundle.js.LICENSE.txt\`) | \`$(field swagger-ui-dist integrity)\` |
| \`redoc/\` | [redoc](https://www.npmjs.com/package/redoc) | $REDOC_VERSION | $(license redoc) (\`redoc/LICENSE\`; bundled libraries in \`redoc.standalone.js.LICENSE.txt\`) | \`$(field redoc integrity)\` |

## swagger-ui/

| file | SHA-256 |
|---|---|
$(listing "$ASSETS/swagger-ui")

## redoc/

| file | SHA-256 |
|---|---|
$(listing "$ASSETS/redoc")
EOF
echo "vendored swagger-ui-dist@$SWAGGER_UI_VERSION and redoc@$REDOC_VERSION into $ASSETS"
