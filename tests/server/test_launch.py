"""``gdscope serve`` in a subprocess: started, answering, stopped with its workers."""

from __future__ import annotations

import json
import urllib.request

import pytest

pytest.importorskip("fastapi")

from gdscope.errors import GdscopeError
from gdscope.server.launch import serving, start_server


@pytest.mark.slow
def test_a_served_computation_runs_in_a_worker_that_stops_with_the_server():
    with serving() as (url, process):
        request = urllib.request.Request(url + "/api/trajectories", b'{"epochs": 3}',
                                         {"content-type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=120) as response:
            assert json.loads(response.read())["epochs"] == 3
        children = open(f"/proc/{process.pid}/task/{process.pid}/children").read().split()
        assert children  # the forkserver (and, through it, the workers)
    assert process.returncode is not None


def test_a_server_that_cannot_start_is_one_error():
    with pytest.raises(GdscopeError, match="did not start"):
        start_server(timeout=60, options=("--frame-ancestor", "not an origin"))
