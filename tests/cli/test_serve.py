"""``gdscope serve``: its URL, and a busy port as one line and exit status 2."""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("fastapi")

from gdscope.cli.main import main
from gdscope.cli.serve import page_url


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8770/"),
        ("::1", "http://[::1]:8770/"),
        ("::", "http://[::1]:8770/"),
        ("0.0.0.0", "http://127.0.0.1:8770/"),
        ("fe80::1", "http://[fe80::1]:8770/"),
        ("localhost", "http://localhost:8770/"),
    ],
)
def test_page_url_brackets_ipv6(host, url):
    assert page_url(host, 8770) == url


def test_a_busy_port_is_one_line_and_exit_2(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = main(["serve", "--port", str(port)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "in use" in err and "explorer on" not in err
