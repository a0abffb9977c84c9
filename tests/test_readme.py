"""The `bash` blocks of the README and of the documentation site run as pasted against a fresh
`make run` (issue 11, item 15; issue 27, item 6).

`make run` is started as a newcomer would, with the differences a test needs: its own port
(PORT, which the blocks' `localhost:8000` is pointed at) and database file, the model provider a
newcomer configures with AI_API_KEY (here the suite's fake OpenAI-compatible server), and the
OpenID Connect provider of social login (OAUTH_*: the project's fake provider, which signs its
test user in at once, so a terminal can follow the flow).
Each block runs alone, in a fresh `bash -euo pipefail`: first the README's, then each page's of
the site in the order of its navigation (`nav` in mkdocs.yml), each page's in the order they
appear. Blocks marked `shell` need what `make run` does not have (Docker, a cluster, the Stripe
CLI) and are not run.
"""
import contextlib
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest
import requests
import yaml

from tests.conftest import FAKE_OPENAI, ROOT
from tests.fake_oidc import FakeOIDCProvider
from tests.fake_openai import API_KEY as FAKE_OPENAI_KEY
from tests.servers import free_port

BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def nav_pages(nav):
    """The markdown files of mkdocs.yml's `nav`, in reading order."""
    for entry in nav:
        for value in (entry.values() if isinstance(entry, dict) else [entry]):
            if isinstance(value, list):
                yield from nav_pages(value)
            else:
                yield value


def documents():
    """The README, then the site's pages in the order of its navigation (paths from the root)."""
    site = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return ["README.md", *(f"{site['docs_dir']}/{page}" for page in nav_pages(site["nav"]))]


def bash_blocks():
    """(where, block) for every `bash` block, in the order they run."""
    return [
        (f"{document}#{number}", block)
        for document in documents()
        for number, block in enumerate(BASH_BLOCK.findall((ROOT / document).read_text()), start=1)
    ]


@pytest.fixture(scope="module")
def identity_provider():
    """The OpenID Connect provider `make run` signs in with (docs/api/authentication.md#social-login)."""
    with FakeOIDCProvider(path="/realms/readme") as provider:
        provider.sign_in_as(sub="readme-hedy", email="hedy@example.com", email_verified=True, name="Hedy Lamarr")
        yield provider


@pytest.fixture(scope="module")
def make_run(tmp_path_factory, identity_provider):
    port = free_port()
    database = tmp_path_factory.mktemp("readme") / "saas.db"
    identity_provider.register_client(
        "readme-client", "readme-secret", [f"http://localhost:{port}/api/v1/auth/oauth/oidc/callback"]
    )
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("DATABASE_URL", "REDIS_URL", "APP_ENV"))},
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{database}",
        "AI_API_BASE": FAKE_OPENAI.url,
        "AI_API_KEY": FAKE_OPENAI_KEY,
        "OAUTH_PROVIDERS": "oidc",
        "OAUTH_OIDC_CLIENT_ID": "readme-client",
        "OAUTH_OIDC_CLIENT_SECRET": "readme-secret",
        "OAUTH_OIDC_ISSUER": identity_provider.issuer,
    }
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        ["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 180  # make venv may have packages to check first
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://localhost:{port}/health/live", timeout=2).status_code == 200:
                    yield port
                    return
            time.sleep(0.5)
        log.seek(0)
        pytest.fail(f"make run did not serve on port {port}:\n{log.read().decode()[-3000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_the_readme_and_the_docs_have_runnable_blocks():
    where = [name for name, _ in bash_blocks()]
    assert sum(name.startswith("README.md#") for name in where) >= 1
    assert len(where) >= 4


@pytest.mark.parametrize(("where", "block"), bash_blocks(), ids=[name for name, _ in bash_blocks()])
def test_each_bash_block_runs_as_pasted(make_run, where, block):
    block = block.replace("localhost:8000", f"localhost:{make_run}")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{where}:\n{block}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.stdout.strip()
