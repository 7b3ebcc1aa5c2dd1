"""``gdscope serve --open`` where no browser can open: one line that says so, then it serves."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("fastapi")

from gdscope.cli.serve import no_display


@pytest.mark.parametrize(
    ("environ", "platform", "expected"),
    [
        ({}, "linux", True),
        ({"DISPLAY": ":0"}, "linux", False),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
        ({"DISPLAY": ""}, "freebsd14", True),
        ({}, "darwin", False),
        ({}, "win32", False),
    ],
)
def test_no_display(environ, platform, expected):
    assert no_display(environ, platform) is expected


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a display is a Linux notion")
def test_open_without_a_display_says_so_and_goes_on_serving(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    command = [sys.executable, "-m", "gdscope", "serve", "--open", "--port", str(port)]
    err = tmp_path / "stderr.txt"
    with err.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stderr=sink, stdout=subprocess.DEVNULL)
    try:
        # a guard against a hang, not a speed bound: a loaded machine imports torch slowly
        deadline, answer = time.monotonic() + 300, None
        while answer is None and process.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health") as reply:
                    answer = reply.status
            except OSError:
                time.sleep(0.2)
        assert answer == 200
    finally:
        process.terminate()
        process.wait(timeout=20)
    lines = err.read_text().splitlines()
    said = [line for line in lines if "no display" in line]
    assert said == [
        f"gdscope: no display to open a browser on; open http://127.0.0.1:{port}/ yourself"
    ]


def test_a_bad_frame_ancestor_is_one_line_before_listening(capsys):
    from gdscope.cli.main import main

    assert main(["serve", "--port", str(_free_port()), "--frame-ancestor", "x;y"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an origin" in err and "explorer on" not in err
