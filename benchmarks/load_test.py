"""Bounded load test of ``gdscope serve``: concurrent clients from a second process, on loopback.

Starts the server on a free 127.0.0.1 port, then for each concurrency level (1, 10, 50) runs
that many client threads for a fixed time, each sending a mix of requests: valid trajectories
(1 and 4 losses), landscapes and small phase diagrams, plus invalid (422 expected) and
oversized (422 expected) ones. Prints requests/s, latency percentiles and the count of
unexpected answers, and checks that valid requests kept succeeding throughout.
Run: ``python benchmarks/load_test.py [--seconds 10]``. Traffic stays on this machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import urllib.error
import urllib.request

from gdscope.server.app import running_server

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


def call(url: str, path: str, body: dict) -> int:
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def level(url: str, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    unexpected = 0
    valid_ok = valid_total = 0
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(offset: int) -> None:
        nonlocal unexpected, valid_ok, valid_total
        i = offset
        while time.perf_counter() < stop:
            path, body, expected = MIX[i % len(MIX)]
            began = time.perf_counter()
            status = call(url, path, body)
            spent = time.perf_counter() - began
            with lock:
                latencies.append(spent)
                unexpected += status != expected
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
        "valid": f"{valid_ok}/{valid_total}",
        "mean": statistics.mean(ordered) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with running_server() as url:
        print("| clients | requests | req/s | p50 ms | p95 ms | p99 ms | unexpected | valid ok |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for clients in (1, 10, 50):
            r = level(url, clients, args.seconds)
            print(
                f"| {r['clients']} | {r['requests']} | {r['rps']:.1f} | {r['p50']:.0f} | "
                f"{r['p95']:.0f} | {r['p99']:.0f} | {r['unexpected']} | {r['valid']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
