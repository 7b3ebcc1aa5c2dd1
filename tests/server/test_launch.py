"""``gdscope serve`` in a subprocess: started, answering, stopped with its workers."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from gdscope.errors import GdscopeError
from gdscope.server.launch import serving, start_server


def children(pid: int) -> set[int]:
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


@pytest.mark.slow
def test_a_served_computation_runs_in_a_worker_that_stops_with_the_server():
    with serving() as (url, process):
        request = urllib.request.Request(url + "/api/trajectories", b'{"epochs": 3}',
                                         {"content-type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=120) as response:
            assert json.loads(response.read())["epochs"] == 3
        # the workers are forked by the forkserver, a child of the server
        workers = {w for helper in children(process.pid) for w in children(helper)}
        assert workers
    assert process.returncode is not None
    time.sleep(1)  # the forkserver reaps its children as it exits
    assert not [w for w in workers if Path(f"/proc/{w}").exists()]


def test_a_server_that_cannot_start_is_one_error():
    with pytest.raises(GdscopeError, match="did not start"):
        start_server(timeout=60, options=("--frame-ancestor", "not an origin"))
