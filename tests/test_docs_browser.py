"""Swagger UI and ReDoc in Debian's headless Chromium with no network but the app:
scripts/check-docs-in-browser.py, the same check as `make check-docs`."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.browser

CHECK = ROOT / "scripts" / "check-docs-in-browser.py"
CHROMIUM = Path("/usr/bin/chromium")


def test_swagger_ui_logs_in_with_the_oauth2_form_and_calls_the_api_with_no_cdn():
    if not CHROMIUM.exists():
        pytest.fail("chromium is not installed: `make test` and `make check-docs` install it (Debian package chromium)")
    result = subprocess.run([sys.executable, str(CHECK)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "logged in through the OAuth2 password form" in result.stdout
    assert '"Try it out" on GET /api/v1/users/me: 200' in result.stdout
    assert "ReDoc rendered the document" in result.stdout
