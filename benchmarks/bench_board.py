"""gdscope board's latencies against a real ``gdscope board`` process on this machine.

- listing 20 recordings of 10,000 steps each (``GET /api/runs``), and reading one whole;
- a new step: the time from its row being written (as ``Recorder`` writes it) to its ``rows``
  event arriving down ``/api/events``;
- the example MLP's landscape (a 300-step recording): the first coarse 11×11 plane after
  ``POST /api/landscape``, the whole job (coarse, the line, the refined 41×41), and the
  runner's time for that 41×41 plane alone (``model_landscape`` in this process, one thread);
- ``/api/health`` while the landscape computes (median and p95).

    python benchmarks/bench_board.py

Prints a table with the load average (the machine may be shared: say so with any number).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from torch import nn

from gdscope.examples.mlp import make_loader, make_model
from gdscope.nets.recorder import STEP_ROW, Recorder
from gdscope.nets.survey import model_landscape
from gdscope.server.launch import start_server

MLP = ("--model", "gdscope.examples.mlp:make_model", "--data", "gdscope.examples.mlp:make_loader")


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def fake_recording(folder: Path, steps: int, parameters: int = 16) -> None:
    """A recording's three files as ``Recorder`` writes them (a small layout, many steps)."""
    folder.mkdir(parents=True)
    index = {"names": ["w"], "shapes": [[parameters]], "states": False, "optimizer": "SGD"}
    (folder / "index.json").write_text(json.dumps(index), encoding="utf-8")
    rows = np.zeros(steps + 1, STEP_ROW)
    rows["step"] = np.arange(steps + 1)
    rows["loss"] = np.exp(-np.arange(steps + 1) / steps)
    (folder / "steps.bin").write_bytes(rows.tobytes())
    (folder / "snapshots.f32").write_bytes(np.zeros((steps + 1, parameters), "<f4").tobytes())


def append(folder: Path, step: int, parameters: int = 16) -> None:
    with (folder / "snapshots.f32").open("ab") as handle:
        handle.write(np.zeros(parameters, "<f4").tobytes())
    with (folder / "steps.bin").open("ab") as handle:
        handle.write(np.array([(step, 0.5)], STEP_ROW).tobytes())


def timed(call, repeat: int = 5) -> float:
    best = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        best.append(time.perf_counter() - began)
    return statistics.median(best)


def new_step_latency(url: str, folder: Path, count: int = 20) -> list[float]:
    arrived: dict[int, float] = {}
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{url}/api/events", timeout=120) as response:
            event = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                    ready.set()
                elif line.startswith("data: ") and event == "rows":
                    data = json.loads(line[6:])
                    for step in data["steps"]:
                        arrived[step] = time.perf_counter()
                if len(arrived) >= count:
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(60)
    written = {}
    for i in range(count):
        step = 10_001 + i
        written[step] = time.perf_counter()
        append(folder, step)
        while step not in arrived:
            time.sleep(0.005)
        time.sleep(0.05)  # apart, so that each is one event
    thread.join(10)
    return [arrived[s] - written[s] for s in written]


def mlp_recording(folder: Path, steps: int = 300) -> None:
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    rec = Recorder(model, path=folder, optimizer=optimizer)
    done = 0
    while done < steps:
        for x, y in make_loader(batch_size=100, shuffle=True):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            rec.step(loss)
            done += 1
            if done == steps:
                break


def main() -> None:
    torch.set_num_threads(1)
    print(f"# gdscope board, {os.cpu_count()} cores; load average at the start {load()}")
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        for i in range(20):
            fake_recording(root / f"run{i:02d}", 10_000)
        mlp_recording(root / "mlp")
        url, process = start_server(timeout=180, command=("board", str(root)),
                                    options=("--no-browser", *MLP))  # fmt: skip
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                listed = client.get("/api/runs").json()["runs"]
                assert len(listed) == 21 and listed[1]["rows"] == 10_001
                rows.append(("list 21 runs (20 of 10,000 steps) GET /api/runs, median of 5",
                             f"{timed(lambda: client.get('/api/runs')) * 1e3:.0f} ms"))  # fmt: skip
                one = timed(lambda: client.get("/api/run", params={"name": "run00"}))
                rows.append(("one run of 10,000 steps whole, GET /api/run, median of 5",
                             f"{one * 1e3:.0f} ms"))  # fmt: skip
                lags = new_step_latency(url, root / "run00")
                middle, worst = statistics.median(lags) * 1e3, max(lags) * 1e3
                rows.append(("a new step written → its event, median / max of 20",
                             f"{middle:.0f} / {worst:.0f} ms"))  # fmt: skip
                began = time.perf_counter()
                client.post("/api/landscape", json={"name": "mlp", "points": 41})
                health: list[float] = []
                coarse = whole = None
                while whole is None:
                    t = time.perf_counter()
                    client.get("/api/health")
                    health.append(time.perf_counter() - t)
                    state = client.get(
                        "/api/landscape", params={"name": "mlp", "points": 41}
                    ).json()
                    now = time.perf_counter() - began
                    if coarse is None and state["stages"]["coarse"] is not None:
                        coarse = now
                    if state["job"] is None or state["job"]["finished"]:
                        assert state["job"] is None or state["job"]["error"] is None, state["job"]
                        whole = now
                    time.sleep(0.05)
                rows.append(("MLP landscape: first coarse 11×11 after the POST", f"{coarse:.2f} s"))
                rows.append(("MLP landscape: coarse + line + refined 41×41", f"{whole:.2f} s"))
                q = np.quantile(np.array(health) * 1e3, [0.5, 0.95])
                rows.append(("GET /api/health while it computes, median / p95",
                             f"{q[0]:.0f} / {q[1]:.0f} ms ({len(health)} requests)"))  # fmt: skip
        finally:
            process.terminate()
            process.wait(timeout=10)
        model = make_model()
        from gdscope.nets.recorder import open_path

        path = open_path(root / "mlp")
        model.load_state_dict(path.state(len(path) - 1), strict=False)
        began = time.perf_counter()
        model_landscape(model, make_loader(), nn.CrossEntropyLoss(), path=path,
                        directions="pca", points=41)  # fmt: skip
        rows.append(("the runner alone: the same 41×41 plane (model_landscape)",
                     f"{time.perf_counter() - began:.2f} s"))  # fmt: skip
    print("| what | time |")
    print("|---|---:|")
    for what, value in rows:
        print(f"| {what} | {value} |")
    print(f"# load average at the end {load()}")


if __name__ == "__main__":
    main()
