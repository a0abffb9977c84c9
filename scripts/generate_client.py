"""Generate the typed TypeScript client in clients/typescript/ from the app's OpenAPI document.

    python scripts/generate_client.py           # what `make client` runs: rewrite the generated files
    python scripts/generate_client.py --check   # generate into a temporary directory and compare

The document comes from the app itself, built in-process from fixed settings (no server, no
database, no Redis, and neither the environment nor .env can change it): exactly what
/openapi.json serves. openapi-typescript (pinned in clients/typescript/package.json, installed by
`make client-tools`) turns it into types for openapi-fetch. The generated files are committed, so
a front end can take them as they are and a pull request shows what changed in the API.
"""
import argparse
import difflib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "typescript"
DOCUMENT = Path("openapi.json")  # the OpenAPI document, as /openapi.json serves it
SCHEMA = Path("src") / "schema.d.ts"  # openapi-typescript's types of every path and schema
GENERATED = (DOCUMENT, SCHEMA)
OPENAPI_TYPESCRIPT = CLIENT / "node_modules" / ".bin" / "openapi-typescript"

# Settings that need no database or Redis. The document does not depend on them, but it must not
# depend on the machine either, so the process environment and .env are not read.
SETTINGS = {
    "APP_ENV": "development",
    "DATABASE_URL": "sqlite://",
    "RATELIMIT_ENABLED": "false",
    "LOG_LEVEL": "WARNING",
}

OUT_OF_DATE = (
    "The TypeScript client in clients/typescript/ is out of date with the API. "
    "Run `make client` and commit the result."
)


def openapi_document():
    """The OpenAPI document as the app serves it at /openapi.json."""
    sys.path.insert(0, str(ROOT))
    from config import Config
    from saas import create_app

    app = create_app(Config.from_env(SETTINGS))
    response = app.test_client().get(app.config["OPENAPI_URL_PREFIX"] + app.config["OPENAPI_JSON_PATH"])
    if response.status_code != 200:
        raise RuntimeError(f"/openapi.json answered {response.status_code}")
    return response.get_json()


def generate(out_dir):
    """Write the generated files under ``out_dir`` (a directory laid out like clients/typescript/)."""
    if not OPENAPI_TYPESCRIPT.exists():
        raise SystemExit(f"{OPENAPI_TYPESCRIPT.relative_to(ROOT)} is missing: run `make client-tools` (or `make client`)")
    out_dir = Path(out_dir)
    (out_dir / SCHEMA).parent.mkdir(parents=True, exist_ok=True)
    document = out_dir / DOCUMENT
    document.write_text(json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n")
    subprocess.run(
        [str(OPENAPI_TYPESCRIPT), str(document), "--output", str(out_dir / SCHEMA)],
        cwd=CLIENT, check=True, capture_output=True, text=True,
    )


def differences(client_dir=CLIENT):
    """Unified diffs of the generated files in ``client_dir`` against a fresh generation; empty
    when they are current."""
    with tempfile.TemporaryDirectory() as fresh:
        generate(fresh)
        diffs = []
        for name in GENERATED:
            committed = Path(client_dir) / name
            old = committed.read_text().splitlines(keepends=True) if committed.exists() else []
            new = (Path(fresh) / name).read_text().splitlines(keepends=True)
            diffs.extend(difflib.unified_diff(old, new, f"committed/{name}", f"generated/{name}"))
        return "".join(diffs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when out of date")
    args = parser.parse_args()
    if not args.check:
        generate(CLIENT)
        print(f"wrote {', '.join(str(Path('clients/typescript') / name) for name in GENERATED)}")
        return 0
    diff = differences()
    if diff:
        lines = diff.splitlines()
        shown = "\n".join(lines[:80]) + (f"\n... {len(lines) - 80} more lines" if len(lines) > 80 else "")
        print(f"{OUT_OF_DATE}\n\n{shown}", file=sys.stderr)
        return 1
    print("clients/typescript is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
