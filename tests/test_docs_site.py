"""The documentation site (issue 27, item 6): `make docs` builds it strict and offline, its
generated parts are the code's (every setting of config.py with its default and description, the
role table of saas/orgs/roles.py), the files it names exist, and the README stays a landing page
that leads to it. Its `bash` blocks run in tests/test_readme.py."""
import importlib.util
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from pydantic import BaseModel, Field

from saas.orgs import roles
from tests.conftest import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
# A path in backquotes that names a file or folder in one of the project's folders.
PROJECT_PATH = re.compile(r"`((?:saas|tests|scripts|deploy|migrations|bench|clients|docs|\.ci)/[\w./-]*)`")


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOKS = load_hooks()


class Page(HTMLParser):
    """A built page: its tables' rows (cells as text) and the URLs it loads."""

    def __init__(self, html):
        super().__init__()
        self.rows, self.loads, self._cell = [], [], None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag in ("script", "img") and attrs.get("src"):
            self.loads.append(attrs["src"])
        elif tag == "link" and attrs.get("rel") in ("stylesheet", "icon", "preload") and attrs.get("href"):
            self.loads.append(attrs["href"])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(self._cell.strip())
            self._cell = None


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site as `make docs` builds it; with no network at all where this process may make a
    network namespace (root, as on CI), so a build that fetches anything fails here."""
    out = tmp_path_factory.mktemp("site")
    command = ["make", "--no-print-directory", "docs", f"DOCS_SITE={out}"]
    if os.geteuid() == 0 and shutil.which("unshare"):
        command = ["unshare", "--net", *command]
    built = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def built_page(site, page):
    return Page((site / page / "index.html").read_text())


def test_make_docs_builds_every_page_with_its_generated_parts_made(site):
    for path in DOCS.rglob("*.md"):
        page = path.relative_to(DOCS).with_suffix("")
        html = site / (page.parent if page.name == "index" else page) / "index.html"
        assert html.exists(), page
        assert "<!-- generated:" not in html.read_text(), page


def test_the_site_loads_nothing_from_another_origin(site):
    for html in site.rglob("*.html"):
        outside = [url for url in Page(html.read_text()).loads if re.match(r"(https?:)?//", url)]
        assert outside == [], f"{html.relative_to(site)} loads {outside}"


def test_a_broken_link_fails_the_build(tmp_path):
    broken = tmp_path / "docs"
    shutil.copytree(DOCS, broken)
    (broken / "index.md").write_text((broken / "index.md").read_text() + "\n[gone](no-such-page.md)\n")
    site_config = (ROOT / "mkdocs.yml").read_text().replace("docs_dir: docs", f"docs_dir: {broken}")
    site_config = site_config.replace("scripts/docs_hooks.py", str(ROOT / "scripts" / "docs_hooks.py"))
    (tmp_path / "mkdocs.yml").write_text(site_config)
    built = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode != 0
    assert "no-such-page.md" in built.stderr


# --- the configuration page -----------------------------------------------------------------


def every_setting():
    return [(group, name, field) for group in HOOKS.settings_groups() for name, field in group.model_fields.items()]


def settings_with_plain_defaults():
    """The settings whose page shows their own default (not a computed one, said in words)."""
    return [setting for setting in every_setting() if "shown_default" not in (setting[2].json_schema_extra or {})]


def test_every_setting_has_a_variable_and_a_description():
    undocumented = [
        f"{group.__name__}.{name}" for group, name, field in every_setting()
        if not field.alias or not (field.description or "").strip()
    ]
    assert undocumented == [], (
        f"{undocumented}: give each Field its variable (alias=) and a description= (the docs' configuration page)"
    )
    assert len(every_setting()) >= 60


@pytest.mark.parametrize(
    ("group", "name", "field"), settings_with_plain_defaults(), ids=[field.alias for _, _, field in settings_with_plain_defaults()]
)
def test_each_default_shown_is_read_back_as_the_real_one(group, name, field):
    shown = HOOKS.shown_default(field)
    text = shown.strip("`")
    if shown == "unset":
        assert field.default is None
    elif shown == "empty":
        assert field.default in ([], {}, "")
    else:
        assert getattr(group(**{field.alias: text}), name) == getattr(group(), name), (field.alias, shown)


def test_the_configuration_page_lists_every_setting_with_its_default_and_description(site):
    rows = {row[0]: row[1:] for row in built_page(site, "configuration").rows if row}
    for group, _, field in every_setting():
        assert field.alias in rows, f"{field.alias} is not on the configuration page"
        default, description = rows[field.alias]
        assert default == re.sub(r"`", "", HOOKS.shown_default(field))
        assert description == re.sub(r"`|\[|\]\([^)]*\)", "", field.description)
    titles = [HOOKS.group_title(group)[0] for group in HOOKS.settings_groups()]
    assert len(titles) == len(set(titles)) >= 10


def test_a_setting_without_a_description_fails_the_page():
    class Undocumented(BaseModel):  # not a config.Settings: the real groups stay as they are
        """A group

        for this test."""

        forgotten: int = Field(1, alias="FORGOTTEN")

    with pytest.raises(HOOKS.GenerationError, match=r"FORGOTTEN\) has no description"):
        HOOKS.settings_reference([Undocumented])


def test_a_generated_part_that_does_not_exist_fails_the_page():
    module = HOOKS
    assert "| `ai.use` |" in module.render("<!-- generated: permissions -->")
    with pytest.raises(module.GenerationError, match="'role-table'"):
        module.render("before\n<!-- generated: role-table -->\n")


# --- the role table ----------------------------------------------------------------------------


def test_the_role_table_is_roles_py(site):
    rows = built_page(site, "api/organizations").rows
    start = next(index for index, row in enumerate(rows) if row[:1] == ["permission"])
    header, rows = rows[start], [row for row in rows[start + 1:] if row[:1] and row[0] in roles.ALL_PERMISSIONS]
    assert header[-2:] == ["what it allows", "operations"]
    table_roles = header[1:-2]
    assert set(table_roles) == set(roles.PERMISSIONS)
    shown = {row[0]: {role for role, mark in zip(table_roles, row[1:-2]) if mark == "yes"} for row in rows}
    needed_by = {row[0]: row[-1] for row in rows}
    assert "POST /api/v1/orgs/{org_id}/invitations" in needed_by["members.invite"]
    assert "DELETE /api/v1/orgs/{org_id}" in needed_by["org.delete"]
    assert shown == {
        permission: {role for role, granted in roles.PERMISSIONS.items() if permission in granted}
        for permission in roles.ALL_PERMISSIONS
    }


# --- what the pages and the README name ------------------------------------------------------


def test_every_file_the_docs_and_the_readme_name_exists():
    missing = []
    for document in [README, *DOCS.rglob("*.md")]:
        for path in PROJECT_PATH.findall(document.read_text()):
            if "<" not in path and not (ROOT / path).exists():
                missing.append(f"{document.relative_to(ROOT)}: {path}")
    assert missing == []


def test_the_readme_is_a_landing_page_that_leads_to_the_docs():
    text = README.read_text()
    assert len(text.splitlines()) < 150
    shell_blocks = re.findall(r"^```shell\n(.*?)^```", text, re.S | re.M)
    assert any(re.search(r"^make run\b", block, re.M) and re.search(r"^make test\b", block, re.M) for block in shell_blocks)
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert "docs/index.md" in links and "docs/configuration.md" in links
    assert [link for link in links if not link.startswith("http") and not (ROOT / link).exists()] == []
