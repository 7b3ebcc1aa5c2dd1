"""The guard in front of the routes: hosts, origins, bodies, duplicate headers, the headers."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from tests.conftest import chromium, require

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from gdscope.server.app import create_app
from gdscope.server.launch import running_server
from gdscope.server.pool import ComputePool, Limits
from gdscope.server.security import Guard, allowed_name, host_name

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
    app = create_app(hosts=("lab.example",))
    yield TestClient(app, base_url=BASE)
    app.state.pool.close()


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8765", "127.0.0.1.evil.example", "[::1]evil.example",
     "[::1]:8765evil", "user@127.0.0.1", "127.0.0.1/x", ""],
)  # fmt: skip
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


def test_a_full_pool_answers_503_before_reading_the_body():
    app = create_app(limits=Limits(workers=1, queue=0))
    client = TestClient(app, base_url=BASE)
    app.state.pool.admit(None, 0, seconds=app.state.pool.limits.backlog_s)  # busy
    response = client.post("/api/phase", json=HEAVY_PHASE)
    assert response.status_code == 503 and "busy" in response.json()["detail"]
    assert int(response.headers["retry-after"]) >= 1
    assert client.get("/api/health").status_code == 200


def test_host_names_are_read_strictly():
    assert host_name("[::1]:8000") == "::1" and host_name("LocalHost:80") == "localhost"
    assert host_name("[::1]evil.example") is None and host_name("a b") is None
    assert allowed_name("::1") == allowed_name("[::1]") == "::1"


# --- the guard at the ASGI level: header lists and bodies as a server hands them over ---------


def call(app, headers, chunks=(b"",), method="POST", path="/api/trajectories"):
    """One request through the ASGI app: (status, headers, body, bytes of body it read)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 8765), "headers": headers}  # fmt: skip
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)]  # fmt: skip
    read, out = 0, []

    async def receive():
        nonlocal read
        if messages:
            read += len(messages[0]["body"])
            return messages.pop(0)
        await asyncio.sleep(3600)  # no disconnect: the client waits for its answer

    async def send(message):
        out.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in out if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body, read


HOST = [(b"host", b"127.0.0.1:8765"), (b"content-type", b"application/json")]


@pytest.fixture(scope="module")
def app():
    app = create_app()
    yield app
    app.state.pool.close()


def test_a_chunked_body_with_a_small_content_length_is_refused_unread(app):
    """Issue 19: Transfer-Encoding: chunked with a small Content-Length read 100 MB."""
    headers = [*HOST, (b"content-length", b"10"), (b"transfer-encoding", b"chunked")]
    status, _, body, read = call(app, headers, [b"[" + b"1," * 100_000] * 50)
    assert status == 400 and read == 0 and b"Transfer-Encoding" in body


def test_the_body_limit_counts_the_bytes_that_arrive(app):
    """Whatever the headers say (here: 10 bytes, or nothing with chunked), the guard stops
    reading once more than the limit has arrived."""
    chunks = [b"[" + b"1," * 5_000] * 50
    limit = Limits().body_bytes
    for declared in ([(b"content-length", b"10")], [(b"transfer-encoding", b"chunked")]):
        status, headers, body, read = call(app, [*HOST, *declared], chunks)
        assert status == 413 and b"over 16384 bytes" in body
        assert limit < read <= limit + len(chunks[0])
        assert headers[b"x-frame-options"] == b"DENY"


def test_a_small_body_in_chunks_is_served(app):
    body = json.dumps(SMALL).encode()
    status, _, answer, _ = call(app, [*HOST, (b"transfer-encoding", b"chunked")],
                                [body[:4], body[4:]])  # fmt: skip
    assert status == 200 and json.loads(answer)["epochs"] == 5


@pytest.mark.parametrize("name", [b"origin", b"host", b"content-length", b"x-gdscope-seq"])
def test_a_header_given_twice_is_refused(app, name):
    """Issue 19: with two Origin headers the last one won."""
    values = {
        b"origin": (b"http://evil.example", b"http://127.0.0.1:8765"),
        b"host": (b"evil.example", b"127.0.0.1:8765"),
        b"content-length": (b"99999", b"14"),
        b"x-gdscope-seq": (b"1", b"2"),
    }[name]
    headers = [*HOST, *((name, v) for v in values)]
    if name == b"host":
        headers = headers[1:]
    status, _, body, _ = call(app, headers, [json.dumps(SMALL).encode()])
    assert status == 400 and name in body


@pytest.mark.parametrize("seq", [b"abc", "\u00b2".encode(), b"1e3"])
@pytest.mark.parametrize("key", [None, b"view"])
def test_a_malformed_sequence_number_is_400_not_500(app, key, seq):
    """Issue 19: ``abc`` without a key and ``²`` with one (``int()`` after ``isdigit()``)."""
    headers = [*HOST, (b"x-gdscope-seq", seq), *([(b"x-gdscope-key", key)] if key else [])]
    status, answered, body, _ = call(app, headers, [json.dumps(SMALL).encode()])
    assert status == 400 and b"x-gdscope-seq" in body
    assert answered[b"x-content-type-options"] == b"nosniff"


def test_a_failing_route_answers_500_with_the_security_headers():
    """Starlette answers an exception outside the middleware, without the headers; the guard
    answers it itself, then lets the error go on to be logged."""

    async def failing(scope, receive, send):
        raise RuntimeError("a bug")

    guard = Guard(failing, hosts=frozenset({"127.0.0.1"}), body_bytes=100,
                  pool=ComputePool(Limits()), compute=frozenset())  # fmt: skip
    with pytest.raises(RuntimeError):
        call(guard, HOST)
    out = []

    async def collect(message):
        out.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": HOST}
    with pytest.raises(RuntimeError):
        asyncio.run(guard(scope, receive, collect))
    assert out[0]["status"] == 500
    assert (b"content-security-policy", guard.headers[0][1]) in out[0]["headers"]


# --- a live server: what reaches it over a socket -----------------------------------------------


def exchange(url: str, request: bytes, chunks=()) -> bytes:
    """Send ``request`` (and ``chunks``, as long as the server reads them); its answer."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(request)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered and closed: it read no further
        answer = b""
        while b"\r\n\r\n" not in answer:
            piece = sock.recv(65536)
            if not piece:
                break
            answer += piece
        return answer


@pytest.mark.slow
def test_a_live_server_refuses_chunked_floods_and_secures_its_own_400s():
    chunk = b"[" + b"1," * 500_000
    flood = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 20  # 20 MB
    post = (b"POST /api/trajectories HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n")  # fmt: skip
    with running_server() as url:
        both = exchange(url, post + b"Content-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n",
                        flood)  # fmt: skip
        chunked = exchange(url, post + b"Transfer-Encoding: chunked\r\n\r\n", flood)
        garbage = exchange(url, b"NOT HTTP AT ALL\r\n\r\n")
        twice = exchange(url, post.replace(b"Host: 127.0.0.1", b"Host: 127.0.0.1\r\nHost: x")
                         + b"Content-Length: 2\r\n\r\n{}")  # fmt: skip
    assert both.startswith(b"HTTP/1.1 400") and b"x-frame-options: DENY" in both
    assert chunked.startswith(b"HTTP/1.1 413") and b"x-frame-options: DENY" in chunked
    assert garbage.startswith(b"HTTP/1.1 400")  # uvicorn's own, for a request it cannot parse
    assert b"x-frame-options: DENY" in garbage and b"content-security-policy" in garbage
    assert twice.startswith(b"HTTP/1.1 400")


# --- the page under its own Content-Security-Policy --------------------------------------------


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_works_under_its_content_security_policy():
    """Plotly draws with no policy violation (no 'unsafe-eval', no outside source)."""

    playwright = require("playwright.sync_api")

    executable = chromium()
    record = (
        "window.__csp = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    with running_server() as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
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
