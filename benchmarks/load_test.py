"""Bounded load test of ``gdscope serve``: concurrent clients from a second process, on loopback.

Starts the server on a free 127.0.0.1 port, then for each concurrency level (1, 10, 50) runs
that many client threads for a fixed time, each sending a mix of requests: valid trajectories
(1 and 4 losses), landscapes and small phase diagrams, plus invalid (422 expected) and
oversized (422 expected) ones. Prints requests/s, latency percentiles, the count of
unexpected answers and of 503s (the compute queue full), and how many valid requests succeeded.

``--flood`` runs the attack instead: 50 clients flood the heaviest valid request (an Adam/L1
phase diagram just under the work budget) while one client times the page, its files and
``/api/health``; then a few hostile requests (a foreign Host, a foreign Origin, a 95 MB body).
It prints static/health p95, the 503 count, the hostile answers and the server's peak RSS.
Run: ``python benchmarks/load_test.py [--seconds 10] [--flood]``. Traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import statistics
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from gdscope.server.compute import estimate
from gdscope.server.launch import running_server, serving
from gdscope.server.models import PhaseRequest
from gdscope.server.pool import Limits

MIX = [
    (
        "/api/trajectories",
        {"optimizer": {"name": "sgd", "hyper": {"lr": 0.1, "momentum": 0.9}}},
        200,
    ),
    (
        "/api/trajectories",
        {
            "losses": [{"name": n} for n in ("mse", "l1", "huber", "smoothl1")],
            "optimizer": {"name": "adam", "hyper": {"lr": 0.05}},
        },
        200,
    ),
    ("/api/landscape", {"losses": [{"name": "l1"}], "grid": {"size": 101}}, 200),
    (
        "/api/phase",
        {
            "x": {"name": "lr", "lo": 0.01, "hi": 3, "count": 24, "log": True},
            "y": {"name": "momentum", "lo": 0, "hi": 0.99, "count": 16},
        },
        200,
    ),
    ("/api/trajectories", {"optimizer": {"name": "sgd", "hyper": {"lr": -1}}}, 422),
    ("/api/trajectories", {"epochs": 10**9}, 422),
    ("/api/landscape", {"grid": {"size": 100000}, "data": {"n": 10**7}}, 422),
    (
        "/api/phase",
        {
            "x": {"name": "lr", "lo": 0.1, "hi": 1, "count": 64},
            "y": {"name": "momentum", "lo": 0, "hi": 0.9, "count": 64},
            "epochs": 500,
            "data": {"n": 1000},
        },
        422,
    ),
]


def call(url: str, path: str, body: dict | None, headers: dict[str, str] | None = None) -> int:
    """The status of a POST of ``body`` (GET without one)."""
    request = urllib.request.Request(
        url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def level(url: str, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    unexpected = busy = 0
    valid_ok = valid_total = 0
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(offset: int) -> None:
        nonlocal unexpected, busy, valid_ok, valid_total
        i = offset
        while time.perf_counter() < stop:
            path, body, expected = MIX[i % len(MIX)]
            began = time.perf_counter()
            status = call(url, path, body)
            spent = time.perf_counter() - began
            with lock:
                latencies.append(spent)
                busy += status == 503  # the queue is full: refused, not wrong
                unexpected += status not in (expected, 503)
                if expected == 200:
                    valid_total += 1
                    valid_ok += status == 200
            i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return {
        "clients": clients,
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50": pct(0.5),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "unexpected": unexpected,
        "busy": busy,
        "valid": f"{valid_ok}/{valid_total}",
        "mean": statistics.mean(ordered) * 1000,
    }


def heaviest_phase() -> dict:
    """An Adam/L1 64×64 phase diagram with as many epochs as the budget allows."""
    body = {
        "optimizer": {"name": "adam"},
        "loss": {"name": "l1"},
        "x": {"name": "lr", "lo": 0.001, "hi": 1, "count": 64, "log": True},
        "y": {"name": "beta1", "lo": 0, "hi": 0.95, "count": 64},
        "epochs": 1,
    }
    while estimate(PhaseRequest.model_validate({**body, "epochs": body["epochs"] + 1})) <= (
        Limits().budget_s
    ):
        body["epochs"] += 1
    return body


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def huge_body(url: str, megabytes: int = 95) -> int:
    """POST a body of ``megabytes`` (announced in Content-Length); the status, or 0 if none."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.putrequest("POST", "/api/trajectories")
        connection.putheader("content-type", "application/json")
        connection.putheader("content-length", str(megabytes << 20))
        connection.endheaders()
        chunk = b" " * (1 << 20)
        with_answer = 0
        try:
            for _ in range(megabytes):
                connection.send(chunk)
        except OSError:  # the server answered and closed: the rest is not read
            pass
        with_answer = connection.getresponse().status
    except OSError:
        pass
    finally:
        connection.close()
    return with_answer


def attack(url: str, body: dict, seconds: float, clients: int, out: Any) -> None:
    """``clients`` threads sending ``body`` without pause; puts the count of each status."""
    counts: Counter[int] = Counter()
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def attacker() -> None:
        while time.perf_counter() < stop:
            try:
                status = call(url, "/api/phase", body)
            except OSError:
                status = 0
            with lock:
                counts[status] += 1

    threads = [threading.Thread(target=attacker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(dict(counts))


def flood(url: str, pid: int, seconds: float, clients: int = 50) -> dict:
    """``clients`` (in another process) flood the heaviest valid request; this one times files."""
    heavy = heaviest_phase()
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    attackers = context.Process(target=attack, args=(url, heavy, seconds, clients, out))
    attackers.start()
    time.sleep(2.0)  # the attackers' process starting up
    times: dict[str, list[float]] = {}
    stop = time.perf_counter() + seconds - 3.0
    paths = ["/", "/static/style.css", "/vendor/plotly.min.js", "/api/health"]
    while time.perf_counter() < stop:
        for path in paths:
            began = time.perf_counter()
            call(url, path, None)
            times.setdefault(path, []).append(time.perf_counter() - began)
        time.sleep(0.05)
    counts = out.get(timeout=seconds + 60)
    attackers.join()

    def p95(ordered: list[float]) -> float:
        ordered = sorted(ordered)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000

    files = [t for path in paths[:-1] for t in times[path]]
    hostile = {
        "bad Host": call(url, "/api/health", None, {"host": "evil.example"}),
        "rebinding": call(url, "/api/trajectories", {"epochs": 5},
                          {"host": "evil.example:8765", "origin": "http://evil.example:8765"}),
        "bad Origin": call(url, "/api/trajectories", {"epochs": 5},
                           {"origin": "http://evil.example"}),
        "95 MB body": huge_body(url),
    }  # fmt: skip
    return {
        "epochs": heavy["epochs"],
        "each": {path: p95(times[path]) for path in paths},
        "static_p95": p95(files),
        "static_max": max(files) * 1000,
        "health_p95": p95(times["/api/health"]),
        "requests": len(files) + len(times["/api/health"]),
        "counts": counts,
        "hostile": hostile,
        "rss": peak_rss_mb(pid),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flood", action="store_true", help="the attack scenario instead")
    args = parser.parse_args()
    if args.flood:
        with serving() as (url, process):
            r = flood(url, process.pid, args.seconds)
        print(f"heaviest valid request: Adam/L1 phase 64×64, {r['epochs']} epochs")
        print("| static p95 (ms) | static max (ms) | health p95 (ms) | timed requests |"
              " 200 | 503 | peak RSS (MB) |")  # fmt: skip
        print("|---:|---:|---:|---:|---:|---:|---:|")
        print(
            f"| {r['static_p95']:.0f} | {r['static_max']:.0f} | {r['health_p95']:.0f} | "
            f"{r['requests']} | {r['counts'].get(200, 0)} | {r['counts'].get(503, 0)} | "
            f"{r['rss']:.0f} |"
        )
        print("p95 (ms) each: " + ", ".join(f"{k} {v:.0f}" for k, v in r["each"].items()))
        print(f"statuses: {r['counts']}")
        print("hostile: " + ", ".join(f"{k} → {v}" for k, v in r["hostile"].items()))
        return
    with running_server() as url:
        print("| clients | requests | req/s | p50 ms | p95 ms | p99 ms | unexpected | 503 |"
              " valid ok |")  # fmt: skip
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for clients in (1, 10, 50):
            r = level(url, clients, args.seconds)
            print(
                f"| {r['clients']} | {r['requests']} | {r['rps']:.1f} | {r['p50']:.0f} | "
                f"{r['p95']:.0f} | {r['p99']:.0f} | {r['unexpected']} | {r['busy']} | "
                f"{r['valid']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
