"""gdscope as a user installs it: the wheel and sdist build and pass ``twine check``; the wheel
holds the page, the native kernel's sources and the example networks; installed into a fresh
virtual environment, away from the source tree, ``gdscope`` draws figures and serves the page.

One slow test (it installs torch into a new venv: a minute or more); the source tree is copied
first, so the build never writes into it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import missing

ROOT = Path(__file__).parents[1]
IN_WHEEL = (
    "gdscope/py.typed",
    "gdscope/server/web/index.html",
    "gdscope/server/web/app.js",
    "gdscope/server/web/style.css",
    "gdscope/engines/native/sgd_kernel.c",
    "gdscope/engines/native/sgd_body.inc",
    "gdscope/examples/mlp.py",
    "gdscope/examples/cnn.py",
    "gdscope/examples/resnet.py",
)
pytestmark = pytest.mark.slow
if shutil.which("git") is None:
    missing("git (it lists the source files)")


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


def source_copy(into: Path) -> Path:
    """The files a clone has (tracked, and new ones git does not ignore), copied."""
    listed = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, into / name)
    return into


def clean_env(tmp: Path) -> dict[str, str]:
    """This environment without the source tree on its path, with a fresh kernel cache."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "GDSCOPE_CACHE": str(tmp / "cache"), "MPLBACKEND": "Agg"}


def get(url: str, body: dict[str, object] | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return reply.status, reply.read()


def serve(gdscope: Path, cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([gdscope, "serve", "--port", str(port)], cwd=cwd, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # a guard against a hang, not a speed bound
    while time.monotonic() < deadline and process.poll() is None:
        try:
            get(url + "/api/health")
            return process, url
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError("the installed gdscope serve did not start")


def test_the_wheel_installs_into_a_fresh_venv_and_runs(tmp_path):
    source = source_copy(tmp_path / "source")
    dist = tmp_path / "dist"
    python = sys.executable
    run(python, "-m", "build", "--no-isolation", "--outdir", dist, source, cwd=tmp_path)
    wheel, sdist = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheel) == 1 and len(sdist) == 1
    assert "PASSED" in run(python, "-m", "twine", "check", wheel[0], sdist[0], cwd=tmp_path)
    names = set(zipfile.ZipFile(wheel[0]).namelist())
    assert set(IN_WHEEL) <= names, set(IN_WHEEL) - names
    assert not any(n.startswith(("tests/", "docs/", "benchmarks/")) for n in names)

    env, work = clean_env(tmp_path), tmp_path / "elsewhere"
    work.mkdir()
    shutil.rmtree(source)  # no source tree beside the installed package
    venv = tmp_path / "venv"
    run(python, "-m", "venv", venv, cwd=work)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--quiet"]
    run(*pip, "-c", ROOT / "constraints.txt", f"{wheel[0]}[web]", cwd=work, env=env)
    gdscope = venv / "bin" / "gdscope"
    where = run(venv / "bin" / "python", "-c", "import gdscope; print(gdscope.__file__)",
                cwd=work, env=env)  # fmt: skip
    assert where.startswith(str(venv)), where

    run(gdscope, "reproduce", "--out", "figures", "--dpi", "30", cwd=work, env=env)
    assert len(list((work / "figures").glob("fig*.png"))) == 10
    # the native kernel, compiled from the sources in the wheel (when a compiler exists)
    check = "from gdscope.engines import native; print(native.load() is not None)"
    built = run(venv / "bin" / "python", "-c", check, cwd=work, env=env).strip()
    assert built == str(shutil.which("cc") is not None or shutil.which("gcc") is not None)

    process, url = serve(gdscope, work, env)
    try:
        status, page = get(url + "/")
        assert status == 200 and b"<script" in page
        assert get(url + "/static/app.js")[0] == 200
        assert get(url + "/vendor/plotly.min.js")[0] == 200
        status, body = get(url + "/api/trajectories", {"epochs": 5})
        assert status == 200 and len(json.loads(body)["runs"]) >= 1
    finally:
        process.terminate()
        process.wait(timeout=20)
