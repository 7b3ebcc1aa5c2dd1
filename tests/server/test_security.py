"""The explorer under attack: hosts, origins, bodies, the queue, the budget, cancellation."""

from __future__ import annotations

import asyncio
import threading

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from gdscope.server.app import (
    KEY_HEADER,
    SEQ_HEADER,
    ComputePool,
    Limits,
    Refused,
    create_app,
    estimate,
    phase,
    unpolled,
)
from gdscope.server.models import PhaseRequest

BASE = "http://127.0.0.1:8765"
SMALL = {"epochs": 5}
HEAVY_PHASE = {
    "optimizer": {"name": "adam"},
    "loss": {"name": "l1"},
    "x": {"name": "lr", "lo": 0.01, "hi": 1, "count": 64},
    "y": {"name": "beta1", "lo": 0, "hi": 0.9, "count": 64},
    "epochs": 500,
}


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(hosts=("lab.example",)), base_url=BASE)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example"])
def test_a_foreign_host_gets_403_with_the_reason(client, host):
    response = client.get("/api/health", headers={"host": host})
    assert response.status_code == 403
    assert (
        "not served here" in response.json()["detail"]
        and "--allow-host" in response.json()["detail"]
    )
    assert client.get("/static", headers={"host": host}).status_code == 403


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "lab.example"])
def test_loopback_and_allowed_hosts_are_served(client, host):
    assert client.get("/api/health", headers={"host": host}).status_code == 200


def test_dns_rebinding_pair_is_refused(client):
    headers = {"host": "evil.example:8765", "origin": "http://evil.example:8765"}
    assert client.post("/api/trajectories", json=SMALL, headers=headers).status_code == 403


@pytest.mark.parametrize(
    "headers",
    [{"origin": "http://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site"}],
)
def test_a_cross_origin_post_gets_403(client, headers):
    response = client.post("/api/trajectories", json=SMALL, headers=headers)
    assert response.status_code == 403 and "cross-" in response.json()["detail"]


def test_a_same_origin_post_is_served(client):
    headers = {"origin": BASE, "sec-fetch-site": "same-origin"}
    assert client.post("/api/trajectories", json=SMALL, headers=headers).status_code == 200


def test_a_huge_body_gets_413_before_it_is_read(client):
    body = b'{"epochs": 5, "pad": "' + b"x" * 100_000 + b'"}'
    response = client.post(
        "/api/trajectories", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and "limit" in response.json()["detail"]


def test_security_headers_on_every_answer(client):
    for response in (client.get("/"), client.get("/static/style.css"),
                     client.get("/api/health"), client.get("/nothing"),
                     client.get("/", headers={"host": "evil.example"})):  # fmt: skip
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "http" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"


def test_docs_are_not_served_from_a_cdn(client):
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").status_code == 200


def test_the_budget_is_seconds_and_names_the_estimate(client):
    response = client.post("/api/phase", json=HEAVY_PHASE)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "request too large: estimated" in detail and " s of compute" in detail
    assert estimate(PhaseRequest.model_validate(HEAVY_PHASE)) > 2


def test_the_budget_tracks_the_optimizer_and_loss():
    """The old budget counted point evaluations: SGD/MSE and Adam/L1 cost the same."""
    body = {**HEAVY_PHASE, "epochs": 100, "data": {"n": 50}}
    sgd = {**body, "optimizer": {"name": "sgd"}, "loss": {"name": "mse"},
           "y": {"name": "momentum", "lo": 0, "hi": 0.9, "count": 64}}  # fmt: skip
    assert estimate(PhaseRequest.model_validate(body)) != estimate(PhaseRequest.model_validate(sgd))


def test_sgd_on_a_regression_is_priced_as_the_native_engine_runs_it():
    """A 64×64×500 SGD phase takes a fraction of a second natively: it stays within budget."""
    momentum = {"name": "momentum", "lo": 0, "hi": 0.9, "count": 64}
    sgd = PhaseRequest.model_validate(
        {**HEAVY_PHASE, "optimizer": {"name": "sgd"}, "loss": {"name": "mse"}, "y": momentum}
    )
    adam = PhaseRequest.model_validate(HEAVY_PHASE)
    assert estimate(sgd) < 1 and unpolled(sgd)
    assert estimate(adam) > 2 and not unpolled(adam)


# --- the pool: a full queue, supersession, disconnection --------------------------------------


class FakeRequest:
    def __init__(self, headers: dict[str, str], gone: bool = False) -> None:
        self.headers, self.gone = headers, gone

    async def is_disconnected(self) -> bool:
        return self.gone


def waits_for_stop(model, should_stop):
    """A computation that runs until it is told to stop (at most 10 s)."""
    done = threading.Event()
    for _ in range(1000):
        if should_stop():
            return {"stopped": True}
        done.wait(0.01)
    return {"stopped": False}


def test_a_full_queue_gets_503_with_retry_after():
    pool = ComputePool(Limits(workers=1, queue=1))
    pool.admit(None, 0)
    pool.admit(None, 0)
    with pytest.raises(Refused) as refused:
        pool.admit(None, 0)
    assert refused.value.status == 503 and int(refused.value.headers["Retry-After"]) >= 1


def test_the_queue_holds_many_small_computations_but_few_heavy_ones():
    pool = ComputePool(Limits(workers=1, queue=32, backlog_s=6))
    for _ in range(20):  # a page's burst: maps, paths, pins
        pool.admit(None, 0, seconds=0.05)
    pool.admit(None, 0, seconds=2)
    pool.admit(None, 0, seconds=2)
    with pytest.raises(Refused) as refused:
        pool.admit(None, 0, seconds=2)
    assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "5"


def test_a_full_pool_answers_503_before_reading_the_body():
    app = create_app(limits=Limits(workers=1, queue=0))
    client = TestClient(app, base_url=BASE)
    app.state.pool.admit(None, 0, seconds=app.state.pool.limits.backlog_s)  # busy
    response = client.post("/api/phase", json=HEAVY_PHASE)
    assert response.status_code == 503 and "busy" in response.json()["detail"]
    assert int(response.headers["retry-after"]) >= 1
    assert client.get("/api/health").status_code == 200


def test_a_superseded_request_is_stopped_and_answered_409():
    pool = ComputePool(Limits(workers=2, queue=0, poll_s=0.01))

    async def scenario():
        first = asyncio.ensure_future(
            pool.run(waits_for_stop, None, FakeRequest({KEY_HEADER: "phase", SEQ_HEADER: "1"}))
        )
        while not pool.jobs:
            await asyncio.sleep(0)
        second = await pool.run(
            lambda model, stop: {"n": 2}, None,
            FakeRequest({KEY_HEADER: "phase", SEQ_HEADER: "2"}),
        )  # fmt: skip
        with pytest.raises(Refused) as refused:
            await first
        late = pool.run(
            lambda model, stop: {}, None, FakeRequest({KEY_HEADER: "phase", SEQ_HEADER: "1"})
        )
        with pytest.raises(Refused) as stale:
            await late
        return second, refused.value, stale.value

    second, refused, stale = asyncio.run(scenario())
    assert second == b'{"n": 2}'
    assert refused.status == 409 and "superseded" in refused.reason
    assert stale.status == 409
    assert not pool.jobs


def test_a_request_whose_client_went_away_is_stopped():
    pool = ComputePool(Limits(workers=1, queue=0, poll_s=0.01))
    with pytest.raises(Refused) as refused:
        asyncio.run(pool.run(waits_for_stop, None, FakeRequest({}, gone=True)))
    assert refused.value.status == 409


def test_should_stop_reaches_the_phase_engine():
    """The pool's stop reaches the engine's steps: it is polled once a step and ends the run."""
    calls = []

    def stop_at_third() -> bool:
        calls.append(1)
        return len(calls) >= 3

    request = PhaseRequest.model_validate({**HEAVY_PHASE, "x": {**HEAVY_PHASE["x"], "count": 2},
                                           "y": {**HEAVY_PHASE["y"], "count": 2}})  # fmt: skip
    phase(request, should_stop=stop_at_third)
    assert len(calls) == 3


# --- the page under its own Content-Security-Policy --------------------------------------------


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_works_under_its_content_security_policy():
    """Plotly draws with no policy violation (no 'unsafe-eval', no outside source)."""
    import shutil

    playwright = pytest.importorskip("playwright.sync_api")
    from gdscope.server.app import running_server

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed")
    record = (
        "window.__csp = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    with running_server() as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.add_init_script(record)
            response = page.goto(url + "/")
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            # Selectors, not wait_for_function: Playwright evaluates that with eval, which the
            # page's policy (rightly) forbids.
            page.wait_for_selector("body[data-ready='true']", timeout=60_000)
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
            violations = page.evaluate("window.__csp")
        finally:
            browser.close()
    assert violations == [] and errors == []
