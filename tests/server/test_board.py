"""gdscope board's routes: the runs, one run, traversal refused, damage reported, events as
steps are written, landscapes started, read back and cancelled, the explorer's guards."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import require
from tests.reference import record_mlp

require("fastapi")
httpx = require("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from gdscope.devices import torch_threads  # noqa: E402
from gdscope.jobs.board import MAX_SHARED, Sources, plane_file  # noqa: E402
from gdscope.nets.recorder import Recorder, open_path  # noqa: E402
from gdscope.server.board import create_board  # noqa: E402
from gdscope.server.launch import start_server  # noqa: E402

MLP = Sources("gdscope.examples.mlp:make_model", "gdscope.examples.mlp:make_loader")


class Training:
    """A small network recorded to ``folder``, stepped on demand (``step``)."""

    def __init__(self, folder: Path) -> None:
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.05)
        self.rec = Recorder(self.model, path=folder, optimizer=self.optimizer)
        self.x, self.y = torch.randn(16, 3), torch.randn(16, 1)

    def step(self, count: int = 1) -> None:
        for _ in range(count):
            self.optimizer.zero_grad()
            loss = nn.functional.mse_loss(self.model(self.x), self.y)
            loss.backward()
            self.optimizer.step()
            self.rec.step(loss)


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    Training(root / "a").step(5)
    Training(root / "nested" / "b").step(2)
    np.savez(root / "surface.npz", xs=[0.0, 1.0], ys=[0.0, 2.0], loss=[[1.0, 2.0], [3.0, 4.0]])
    Training(tmp_path / "secret").step(2)
    (root / "out").symlink_to(tmp_path / "secret", target_is_directory=True)
    (tmp_path / "secret.json").write_text(json.dumps({"eigenvalues": [1.0]}), encoding="utf-8")
    (root / "spectrum.json").symlink_to(tmp_path / "secret.json")
    return root


@pytest.fixture
def client(runs) -> Iterator[TestClient]:
    with TestClient(create_board(runs), base_url="http://127.0.0.1") as client:
        yield client


def test_the_listing_names_every_run_inside_and_none_outside(client):
    listing = client.get("/api/runs").json()
    assert [(r["name"], r["kind"]) for r in listing["runs"]] == [
        ("a", "recording"), ("nested/b", "recording"), ("surface.npz", "surface")]  # fmt: skip
    a = listing["runs"][0]
    assert (a["rows"], a["snapshots"], a["parameters"], a["optimizer"]) == (6, 6, 21, "SGD")
    assert not listing["truncated"]


def test_a_recording_is_sent_as_its_files_hold_it(client, runs):
    got = client.get("/api/run", params={"name": "a"}).json()
    path = open_path(runs / "a")
    assert got["steps"] == path.steps.tolist() and not got["thinned"] and got["end"] == 6
    assert got["validation_rows"]["steps"] == [] and got["validation"] == 0
    assert got["losses"][0] is None and got["losses"][1:] == path.losses[1:].tolist()
    assert got["problems"] == [] and got["sharpness"] is None
    surface = client.get("/api/run", params={"name": "surface.npz"}).json()
    assert surface["loss"] == [[1.0, 2.0], [3.0, 4.0]] and surface["kind"] == "surface"


@pytest.mark.parametrize("name", ["../secret", "/etc/passwd", "nested/../../secret", "out",
                                  "out/index.json", "spectrum.json", "..", "a/../.."])  # fmt: skip
def test_names_leading_outside_are_refused_with_a_reason(client, name):
    for answer in (client.get("/api/run", params={"name": name}),
                   client.get("/api/landscape", params={"name": name})):  # fmt: skip
        assert answer.status_code == 403, answer.text
        assert "outside" in answer.json()["detail"] or "not a name" in answer.json()["detail"]


def test_an_encoded_traversal_in_the_path_reaches_no_file(client):
    for url in ("/static/..%2f..%2fetc%2fpasswd", "/static/../../etc/passwd",
                "/static/%2e%2e/board.py"):  # fmt: skip
        answer = client.get(url)
        assert answer.status_code == 404 and b"root:" not in answer.content


@pytest.mark.parametrize("name", ["nothing", "nested", "a/.board", "a/steps.bin"])
def test_what_is_not_a_run_is_404(client, name):
    answer = client.get("/api/run", params={"name": name})
    assert answer.status_code == 404 and answer.json()["detail"]


def test_corrupt_and_truncated_runs_say_what_cannot_be_read(client, runs):
    (runs / "a" / "index.json").write_text("{not json", encoding="utf-8")
    with (runs / "nested" / "b" / "steps.bin").open("ab") as handle:
        handle.write(b"\x01\x02\x03")  # a row cut short
    (runs / "broken.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    (runs / "c").mkdir()
    (runs / "c" / "index.json").write_text('{"names": ["w"], "shapes": [[2]]}', encoding="utf-8")
    a = client.get("/api/run", params={"name": "a"}).json()
    assert len(a["steps"]) == 6 and "index.json is not a recording's index" in a["problems"][0]
    b = client.get("/api/run", params={"name": "nested/b"}).json()
    assert len(b["steps"]) == 3 and "3 bytes of a row" in b["problems"][0]
    c = client.get("/api/run", params={"name": "c"}).json()
    assert c["steps"] == [] and "no steps.bin" in " ".join(c["problems"])
    listing = client.get("/api/runs").json()
    assert {r["name"] for r in listing["runs"]} == {"a", "c", "nested/b", "surface.npz"}
    assert client.get("/", headers={"accept": "text/html"}).status_code == 200


def test_the_explorer_guards_apply(client):
    assert client.get("/api/runs", headers={"host": "evil.example"}).status_code == 403
    crossed = client.post("/api/landscape", json={"name": "a"},
                          headers={"origin": "http://evil.example"})  # fmt: skip
    assert crossed.status_code == 403
    big = client.post("/api/landscape", content=b"x" * 20_000,
                      headers={"content-type": "application/json"})  # fmt: skip
    assert big.status_code == 413
    answer = client.get("/api/health")
    assert answer.headers["x-frame-options"] == "DENY" and answer.json()["landscapes"] is False
    refused = client.post("/api/landscape", json={"name": "a"})
    assert refused.status_code == 409 and "--model" in refused.json()["detail"]
    assert client.post("/api/landscape", json={"name": "a", "points": 5}).status_code == 422
    assert client.post("/api/landscape", json={"name": "a", "model": "os:system"}).status_code \
        == 422  # fmt: skip


def _wait(client: TestClient, name: str, points: int, *, route: str = "/api/landscape") -> dict:
    """The state of a landscape (``route``: ``/api/compare``, of a plane that the runs ``name``,
    comma-separated, share) once its job has finished."""
    key = "names" if route == "/api/compare" else "name"
    while True:
        state = client.get(route, params={key: name, "points": points}).json()
        if state["job"] is None or state["job"]["finished"]:
            return state
        time.sleep(0.2)


def test_a_landscape_is_computed_in_the_background_cached_and_cancellable(tmp_path):
    record_mlp(tmp_path / "mlp")
    with TestClient(create_board(tmp_path, sources=MLP), base_url="http://127.0.0.1") as client:
        started = client.post("/api/landscape", json={"name": "mlp", "points": 15}).json()
        assert started["snapshots"] == 6 and started["job"] is not None
        done = _wait(client, "mlp", 15)
        assert done["job"]["error"] is None, done["job"]
        stages = done["stages"]
        assert len(stages["coarse"]["xs"]) == 11 and len(stages["refined"]["xs"]) == 15
        assert len(stages["line"]["xs"]) == 41 and stages["refined"]["shell"].startswith(
            "gdscope landscape --model gdscope.examples.mlp:make_model"
        )
        # A second visit reads it back, nothing computed.
        again = client.post("/api/landscape", json={"name": "mlp", "points": 15}).json()
        assert again["job"] is None and again["stages"] == stages
        # A big grid, cancelled: its process is gone and the state says so.
        client.post("/api/landscape", json={"name": "mlp", "points": 301})
        process = client.app.state.landscapes.jobs["landscape", ("mlp",)].process
        order = {"name": "mlp", "points": 301, "cancel": True}
        cancelled = client.post("/api/landscape", json=order).json()
        assert cancelled["job"]["cancelled"] and cancelled["job"]["error"] == "cancelled"
        assert not process.is_alive()


def test_a_plane_shared_by_two_runs_is_computed_cached_and_cancellable(tmp_path):
    from gdscope.jobs.board import CACHE
    from gdscope.jobs.boardrecords import landscape_record

    record_mlp(tmp_path / "a", batches=5)
    record_mlp(tmp_path / "b", batches=3)
    Training(tmp_path / "small").step(4)
    with TestClient(create_board(tmp_path, sources=MLP), base_url="http://127.0.0.1") as client:
        order = {"names": ["a", "b"], "points": 13}
        started = client.post("/api/compare", json=order).json()
        assert started["counts"] == [6, 4] and started["job"] is not None
        done = _wait(client, "a,b", 13, route="/api/compare")
        assert done["job"]["error"] is None, done["job"]
        stages = done["stages"]
        assert stages["line"] is None and len(stages["refined"]["xs"]) == 13
        assert [r["name"] for r in stages["refined"]["runs"]] == ["a", "b"]
        assert stages["refined"]["shell"].count(" --path ") == 2
        assert list((tmp_path / CACHE).glob("compare-*-6_4-13.json"))
        again = client.post("/api/compare", json=order).json()
        assert again["job"] is None and again["stages"] == stages  # read back
        params = {"name": "a", "view": "shared", "compare": "b", "points": 13}
        figure = client.get("/api/figure", params=params).json()
        assert figure["command"] == stages["refined"]["shell"]
        assert figure["record"] == landscape_record(stages["refined"]["command"])
        # A big grid, cancelled.
        client.post("/api/compare", json={"names": ["a", "b"], "points": 301})
        process = client.app.state.landscapes.jobs["landscape", ("a", "b")].process
        cancelled = client.post("/api/compare", json={"names": ["a", "b"], "points": 301,
                                                      "cancel": True}).json()  # fmt: skip
        assert cancelled["job"]["cancelled"] and not process.is_alive()
        # Runs of different layouts: the job says why, the board goes on.
        client.post("/api/compare", json={"names": ["a", "small"], "points": 11})
        mismatch = _wait(client, "a,small", 11, route="/api/compare")
        assert "runs a and small do not share one parameter layout" in mismatch["job"]["error"]
        # More than MAX_SHARED (the page reads it from /api/health), or one run: refused.
        most = client.get("/api/health").json()["max_shared"]
        assert most == MAX_SHARED
        for names in ([f"r{i}" for i in range(most + 1)], ["a"]):
            assert client.post("/api/compare", json={"names": names}).status_code == 422
        assert client.get("/api/compare", params={"names": "a"}).status_code == 422
        assert client.get("/api/compare", params={"names": "a,../x"}).status_code == 403


def test_a_landscape_past_its_deadline_is_stopped_and_keeps_what_finished(tmp_path):
    record_mlp(tmp_path / "mlp")
    board = create_board(tmp_path, sources=MLP, deadline_s=5.0)
    with TestClient(board, base_url="http://127.0.0.1") as client:
        client.post("/api/landscape", json={"name": "mlp", "points": 151})
        process = client.app.state.landscapes.jobs["landscape", ("mlp",)].process
        stopped = _wait(client, "mlp", 151)
        error = stopped["job"]["error"]
        assert error.startswith("stopped after") and "deadline of 5 s (--deadline)" in error
        assert not process.is_alive()
        assert stopped["stages"]["coarse"] is not None and stopped["stages"]["refined"] is None
        # The refined grid's finished chunks wait in its resume file for the next Compute.
        assert plane_file(tmp_path / "mlp", 6, 151).with_suffix(".resume.npz").exists()


def test_the_spectrum_on_demand_is_what_its_command_computes(tmp_path):
    from gdscope.cli.main import main

    record_mlp(tmp_path / "mlp")
    with TestClient(create_board(tmp_path, sources=MLP), base_url="http://127.0.0.1") as client:
        assert client.get("/api/spectrum", params={"name": "mlp"}).json()["spectrum"] is None
        client.post("/api/spectrum", json={"name": "mlp"})
        while True:
            state = client.get("/api/spectrum", params={"name": "mlp"}).json()
            if state["job"]["finished"]:
                break
            time.sleep(0.2)
        assert state["job"]["error"] is None, state["job"]
        spectrum = state["spectrum"]
        assert spectrum["step"] == 5 and len(spectrum["eigenvalues"]) == 10
    argv = spectrum["command"][1:-2]
    saved = tmp_path / "again.json"
    # On one thread, as the board's worker computes (landscape_worker): on two, the float32
    # sums of a Hessian-vector product may come out in another order.
    with torch_threads(1):
        assert main([*argv, "--out", str(tmp_path / "again.png"), "--save", str(saved)]) == 0
    again = json.loads(saved.read_text(encoding="utf-8"))
    assert again["eigenvalues"] == spectrum["eigenvalues"]
    assert again["density"] == spectrum["density"]
    # The record the board's PNG of it carries is the one the command wrote into its figure.
    from gdscope.jobs.records import read_record

    with TestClient(create_board(tmp_path, sources=MLP), base_url="http://127.0.0.1") as client:
        figure = client.get("/api/figure", params={"name": "mlp", "view": "spectrum"}).json()
    assert figure["record"] == read_record(tmp_path / "again.png") == json.loads(figure["text"])
    assert figure["command"] == spectrum["shell"] and figure["file"] == "spectrum.png"


def test_each_view_says_what_its_png_carries(client, runs, tmp_path):
    from gdscope.jobs.replay import replay

    got = client.get("/api/figure", params={"name": "a", "view": "loss", "compare": "nested/b"})
    rec = got.json()["record"]
    assert rec["kind"] == "curves" and [r["label"] for r in rec["runs"]] == ["a", "nested/b"]
    assert [r["rows"] for r in rec["runs"]] == [6, 3]  # what /api/run sends: step 0 too
    png = tmp_path / "loss.png"  # a PNG with that text chunk (the page writes it in png.js)
    from gdscope.files import save_figure
    from gdscope.jobs.board import draw_curves

    save_figure(draw_curves(rec), png, config=rec)
    assert replay(png, tmp_path / "again.png").read_bytes() == png.read_bytes()
    surface = client.get("/api/figure", params={"name": "surface.npz", "view": "file"}).json()
    assert surface["record"] is None and "no gdscope command" in surface["why"]
    for params, status in (({"name": "a", "view": "heatmap"}, 422),
                           ({"name": "surface.npz", "view": "loss"}, 404),
                           ({"name": "a", "view": "plane"}, 404),
                           ({"name": "../secret", "view": "loss"}, 403)):  # fmt: skip
        assert client.get("/api/figure", params=params).status_code == status, params


def test_a_landscape_of_bad_user_code_fails_in_one_line(tmp_path):
    record_mlp(tmp_path / "mlp")
    wrong = Sources("gdscope.examples.cnn:make_model", "gdscope.examples.mlp:make_loader")
    with TestClient(create_board(tmp_path, sources=wrong), base_url="http://127.0.0.1") as client:
        client.post("/api/landscape", json={"name": "mlp", "points": 11})
        failed = _wait(client, "mlp", 11)["job"]
        assert failed["finished"] and "do not match" in failed["error"]
        assert client.get("/api/health").status_code == 200


# Against a real server (a subprocess): events, a flood, the command line ------------------


@pytest.fixture
def board(runs) -> Iterator[str]:
    url, process = start_server(timeout=120, command=("board", str(runs)),
                                options=("--no-browser",))  # fmt: skip
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _events(url: str, seen: list[tuple[str, dict]], stop: threading.Event) -> None:
    with httpx.stream("GET", f"{url}/api/events", timeout=60) as response:
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: ") and name is not None:
                seen.append((name, json.loads(line[len("data: ") :])))
            if stop.is_set():
                return


def test_events_deliver_new_runs_and_newly_appended_steps(board, runs):
    seen: list[tuple[str, dict]] = []
    stop = threading.Event()
    reader = threading.Thread(target=_events, args=(board, seen, stop), daemon=True)
    reader.start()
    while not seen:
        time.sleep(0.05)
    assert seen[0][0] == "runs" and [r["name"] for r in seen[0][1]["runs"]][:1] == ["a"]
    assert not any(event == "rows" for event, _ in seen)  # rows already there are not resent
    training = Training(runs / "live")
    training.step(3)

    def rows() -> list[int]:
        return [s for e, d in list(seen) if e == "rows" and d["name"] == "live" for s in d["steps"]]

    while rows() != [0, 1, 2, 3]:
        time.sleep(0.05)
    training.step(2)
    while rows() != [0, 1, 2, 3, 4, 5]:
        time.sleep(0.05)
    starts = [d["start"] for e, d in list(seen) if e == "rows" and d["name"] == "live"]
    assert starts[0] == 0 and sorted(starts) == starts
    listed = [d for e, d in list(seen) if e == "runs"][-1]["runs"]
    assert {r["name"] for r in listed} >= {"a", "live"}
    stop.set()
    training.step()  # something to read, so the reader wakes and sees the stop


def test_a_flood_of_requests_gets_its_answers(board):
    statuses: list[int] = []

    def ask() -> None:
        with httpx.Client(timeout=60) as c:
            for _ in range(10):
                statuses.append(c.get(f"{board}/api/runs").status_code)
                statuses.append(c.get(f"{board}/api/run", params={"name": "../x"}).status_code)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) == 80 and statuses.count(403) == 80


def test_the_command_line_refuses_in_one_line(tmp_path):
    def board(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gdscope", "board", *args, "--no-browser"],
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = board(str(tmp_path), "--port", str(port))
    assert busy.returncode == 2 and busy.stderr.count("\n") == 1
    assert "the port is in use" in busy.stderr
    half = board(str(tmp_path), "--model", "gdscope.examples.mlp:make_model")
    assert half.returncode == 2 and "--model and --data go together" in half.stderr
    (tmp_path / "file.txt").write_text("x")
    a_file = board(str(tmp_path / "file.txt"))
    assert a_file.returncode == 2 and "is not a folder of runs" in a_file.stderr
    wrong = board(str(tmp_path), "--model", "nowhere:fn", "--data", "gdscope.examples.mlp:x")
    assert wrong.returncode == 2 and "cannot import 'nowhere'" in wrong.stderr
    never = board(str(tmp_path), "--deadline", "0")
    assert never.returncode == 2 and never.stderr.count("\n") == 1
    assert "--deadline" in never.stderr and "positive" in never.stderr


def test_board_in_a_notebook_frames_the_page_for_jupyter(runs):
    import urllib.request

    import gdscope
    from gdscope.server import notebook

    try:
        shown = gdscope.board(runs)
        assert "gdscope board" in shown._repr_html_()
        with urllib.request.urlopen(shown.url + "api/runs", timeout=30) as answer:
            policy = answer.headers["content-security-policy"]
            listed = json.loads(answer.read())
        assert "frame-ancestors http://localhost:*" in policy
        assert listed["runs"][0]["name"] == "a"
        assert gdscope.board(runs).url == shown.url  # one server per folder and settings
        with pytest.raises(gdscope.GdscopeError, match="go together"):
            gdscope.board(runs, model="gdscope.examples.mlp:make_model")
    finally:
        notebook.stop()
