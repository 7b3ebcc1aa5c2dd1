"""A small flood of the heaviest valid requests: /api/health keeps answering, the queue is bounded.

Speeds are measured by ``benchmarks/load_test.py --flood``; this only checks that health
answers within a generous bound (the old server: 20 s) and that the surplus is refused with 503.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from gdscope.server.compute import estimate
from gdscope.server.launch import serving
from gdscope.server.models import PhaseRequest
from gdscope.server.pool import Limits
from tests.server.test_security import HEAVY_PHASE

HEAVY = {**HEAVY_PHASE, "epochs": 20}


def status(url: str, body: dict | None = None, timeout: float = 30) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


@pytest.mark.slow
def test_health_answers_while_clients_flood_the_heaviest_requests():
    assert estimate(PhaseRequest.model_validate(HEAVY)) <= Limits().budget_s  # valid
    counts: Counter[int] = Counter()
    health: list[int] = []
    with serving() as (url, process):
        stop = time.monotonic() + 6

        def attacker() -> None:
            while time.monotonic() < stop:
                counts[status(url + "/api/phase", HEAVY, timeout=60)] += 1

        threads = [threading.Thread(target=attacker) for _ in range(12)]
        for thread in threads:
            thread.start()
        while time.monotonic() < stop:
            health.append(status(url + "/api/health", timeout=60))  # a hang guard, not a clock
            time.sleep(0.2)
        for thread in threads:
            thread.join()
        peak = Path(f"/proc/{process.pid}/status").read_text().split("VmHWM:")[1].split()[0]
    assert health and set(health) == {200}
    assert counts[503] > 0 and set(counts) <= {200, 503}
    assert int(peak) < 1024 * 1024  # kB
