"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis): no request gets a 500.

A few hundred requests drawn from ``/openapi.json``, valid ones (which compute, in the pool's
worker processes) and ones that break the schema. The server's budget is lowered here so the
valid ones stay cheap; a response is never slower than twice the budget because the pool
kills a computation at twice its estimate (``tests/server/test_pool.py``), so no wall-clock
bound is asserted here.
"""

from __future__ import annotations

import importlib
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = (
    importlib.import_module("schemathesis")  # under CI a missing dev extra is an error
    if os.environ.get("CI") == "true"
    else pytest.importorskip("schemathesis")
)
from schemathesis.generation import GenerationMode  # noqa: E402

from gdscope.server.app import create_app  # noqa: E402
from gdscope.server.pool import Limits  # noqa: E402

ASGI_HOST = "testserver"
"""The host name schemathesis's ASGI client sends."""
APP = create_app(hosts=(ASGI_HOST,), limits=Limits(budget_s=0.25, workers=2, least_s=0.25))
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)
CASES = {mode: SCHEMA.as_strategy(generation_mode=mode)
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def workers():
    """The workers started before the first draw (on a busy machine their first start, which
    imports torch, took longer than the fuzzer's 10 s read timeout)."""
    pool = APP.state.pool
    pool.start()
    for _ in range(6000):
        if len(pool.idle) == pool.limits.workers or pool.failure:
            break
        time.sleep(0.05)
    assert len(pool.idle) == pool.limits.workers, pool.failure
    yield
    pool.close()


def test_the_schema_lists_every_route_of_the_api():
    paths = {operation.ok().path for operation in SCHEMA.get_all_operations()}
    assert {"/api/phase", "/api/landscape", "/api/trajectories", "/api/command",
            "/api/schema", "/api/health"} <= paths  # fmt: skip


@pytest.mark.parametrize("mode", list(CASES), ids=lambda m: m.value)
def test_no_generated_request_gets_a_500(mode):
    statuses: list[int] = []

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(CASES[mode])
    def fuzz(case):
        response = case.call()
        statuses.append(response.status_code)
        assert response.status_code < 500 or response.status_code == 503, (
            case.operation.label,
            case.body,
            response.text[:300],
        )
        assert response.headers["x-content-type-options"] in ("nosniff", ["nosniff"])

    fuzz()
    assert len(statuses) >= 100  # the draws ran (hypothesis may stop early on a tiny space)
