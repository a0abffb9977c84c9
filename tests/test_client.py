"""The typed TypeScript client in clients/typescript/ (`make client`): current with the API, compiling
with its example, failing to compile when the API changes under it, and working against a server.

Marked `client`: these need the npm packages that `make client-tools` installs from the client's
package-lock.json (`make test` does; `make test-fast` leaves them out, and checks only that the
committed OpenAPI document is current, in tests/test_openapi.py).
"""
import importlib.util
import json
import shutil
import subprocess
import threading

import pytest
from werkzeug.serving import make_server

from saas.extensions import db
from saas.users.models import User
from tests.conftest import ROOT

pytestmark = pytest.mark.client

CLIENT = ROOT / "clients" / "typescript"
TSC = CLIENT / "node_modules" / ".bin" / "tsc"
SOURCES = ("src", "example.ts", "tsconfig.json", "package.json")


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("generate_client", ROOT / "scripts" / "generate_client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def client_copy(tmp_path):
    """A copy of the client's sources, using its installed node_modules."""
    if not TSC.exists():
        pytest.fail("the TypeScript client's npm packages are missing: run `make client-tools`")
    copy = tmp_path / "client"
    copy.mkdir()
    for name in SOURCES:
        source = CLIENT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, copy / name)
    (copy / "node_modules").symlink_to(CLIENT / "node_modules")
    return copy


def tsc(directory, *args):
    return subprocess.run([str(TSC), "-p", str(directory), *args], capture_output=True, text=True, timeout=120)


def test_the_committed_client_is_current(script):
    assert script.differences() == "", script.OUT_OF_DATE


def test_make_client_says_what_to_do_when_the_committed_client_is_stale(script, client_copy):
    for name in script.GENERATED:
        (client_copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CLIENT / name, client_copy / name)
    schema = client_copy / script.SCHEMA
    schema.write_text(schema.read_text().replace('"/api/v1/users/me"', '"/api/v1/users/self"'))
    diff = script.differences(client_copy)
    assert '-    "/api/v1/users/self": {' in diff and '+    "/api/v1/users/me": {' in diff
    assert "Run `make client` and commit the result." in script.OUT_OF_DATE


def test_the_client_and_its_example_compile():
    result = tsc(CLIENT, "--noEmit")
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_api_change_under_the_example_breaks_its_compilation(client_copy):
    # As if `plan` were renamed in the user object and `make client` run: the front end breaks.
    schema = client_copy / "src" / "schema.d.ts"
    generated = schema.read_text()
    # The User component's own `plan` (other components, such as the admin API's, have one too).
    user = generated.index("\n        User: {\n")
    plan = generated.index("readonly plan: string;", user)
    assert plan < generated.index("\n        };\n", user)
    schema.write_text(generated[:plan] + "readonly tier: string;" + generated[plan + len("readonly plan: string;"):])
    result = tsc(client_copy, "--noEmit")
    assert result.returncode != 0
    assert "example.ts" in result.stdout and "Property 'plan' does not exist" in result.stdout


@pytest.fixture
def served(embedded_app):
    """The embedded app (SQLite, inline jobs) served over HTTP on loopback, as node's fetch needs."""
    server = make_server("127.0.0.1", 0, embedded_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_the_example_signs_up_logs_in_refreshes_and_logs_out(client_copy, served, embedded_app):
    built = client_copy / "built"
    result = tsc(client_copy, "--noEmit", "false", "--outDir", str(built))
    assert result.returncode == 0, result.stdout
    shutil.copy(client_copy / "package.json", built / "package.json")  # "type": "module"
    (built / "node_modules").symlink_to(CLIENT / "node_modules")
    run = (
        "const { example } = await import('./example.js');"
        "console.log(JSON.stringify(await example(process.argv[1], process.argv[2], process.argv[3])));"
    )
    result = subprocess.run(
        ["node", "--input-type=module", "-e", run, served, "ada@example.com", "a long passphrase"],
        cwd=built, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    *lines, returned = result.stdout.strip().splitlines()
    assert lines == [
        "signed in as ada@example.com (plan free)",
        "renamed to Ada Lovelace; token refreshed: true",
        "free plan: 20000 tokens left, 0 API keys",
    ]
    assert json.loads(returned)["full_name"] == "Ada Lovelace"
    with embedded_app.app_context():
        assert db.session.scalar(db.select(User.full_name).filter_by(email="ada@example.com")) == "Ada Lovelace"
