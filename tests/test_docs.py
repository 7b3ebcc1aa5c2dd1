"""The documentation site (mkdocs.yml, docs/): it builds with ``mkdocs build --strict`` (broken
links, anchors and references fail), and what it lists is what the code has: every command,
every route of the server, every name ``gdscope`` exports."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gdscope
from gdscope.cli.main import build_parser
from tests.conftest import require

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
require("mkdocs")


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", config, "-d", site]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})  # fmt: skip


def test_the_site_builds_strictly_outside_the_tree(tmp_path):
    done = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "snapshots" in api  # mkdocstrings rendered Recorder's docstring


@pytest.mark.slow
def test_a_broken_link_fails_the_build(tmp_path):
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path)
    (tmp_path / "src").symlink_to(ROOT / "src")
    with (tmp_path / "docs" / "index.md").open("a") as page:
        page.write("\nSee [the missing page](missing.md).\n")
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0 and "missing.md" in done.stderr


def test_every_command_has_its_row():
    commands = next(a.choices for a in build_parser()._actions if hasattr(a, "add_parser"))
    page = (DOCS / "commands.md").read_text()
    for name in commands:
        assert f"| `gdscope {name}` |" in page, name


def test_every_exported_name_is_in_the_api_reference():
    page = (DOCS / "api.md").read_text()
    documented = set(re.findall(r"^::: gdscope\.[\w.]+\.(\w+)$", page, flags=re.M))
    assert set(gdscope.__all__) - {"__version__"} <= documented


def test_every_route_is_documented_and_the_example_request_is_valid():
    require("fastapi")
    from fastapi.testclient import TestClient

    from gdscope.server.app import create_app

    app = create_app()
    page = (DOCS / "explorer.md").read_text()
    paths = {getattr(route, "path", "") for route in app.routes} - {""}
    assert "/api/phase" in paths
    for path in paths:
        assert f"`{path}`" in page, f"{path} is not in docs/explorer.md"
    curl = re.search(r"^curl .*?'\)?$", page.replace("\\\n", " "), flags=re.M)
    assert curl is not None
    args = shlex.split(curl.group(0))
    body = json.loads(args[args.index("-d") + 1])
    url = next(a for a in args if a.startswith("http://"))
    client = TestClient(app, base_url="http://127.0.0.1:8000")
    answer = client.post(url.removeprefix("http://127.0.0.1:8000"), json=body)
    assert answer.status_code == 200 and answer.json()["runs"], answer.text


def test_every_extra_has_its_row_in_the_install_table():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    page = (DOCS / "getting-started.md").read_text()
    rows = set(re.findall(r"^\| `(\w+)` \|", page, flags=re.M))
    assert rows == set(extras)
