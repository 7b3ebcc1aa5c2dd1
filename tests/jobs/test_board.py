"""gdscope board's data: runs listed, rows read as they are appended, damage reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from gdscope.errors import GdscopeError
from gdscope.jobs.board import (
    CACHE,
    STEPS,
    VALIDATION,
    Entry,
    NoSuchRun,
    OutsideRuns,
    Recording,
    Runs,
    Sources,
    Subject,
    Tail,
    Watcher,
    cached,
    compute_landscape,
    curves_record,
    plane_file,
    read_file_run,
    read_recording,
    thin,
)
from gdscope.jobs.boardrecords import landscape_record
from gdscope.nets.recorder import STEP_ROW, Recorder, open_path

from ..reference import record_mlp

MLP = Sources("gdscope.examples.mlp:make_model", "gdscope.examples.mlp:make_loader")


def _record(folder, steps: int, *, every: int = 1) -> tuple[nn.Module, Recorder]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    rec = Recorder(model, path=folder, optimizer=optimizer, every=every)
    _train(model, optimizer, rec, steps)
    return model, rec


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, rec: Recorder, steps: int) -> None:
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        rec.step(loss)


def test_tail_reads_only_the_rows_appended_since_and_equals_open_path(tmp_path):
    model, rec = _record(tmp_path / "run", 5)
    tail = Tail(tmp_path / "run" / STEPS)
    first = tail.read()
    assert first.start == 0 and len(first.steps) == 6  # snapshot 0 and five steps
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    _train(model, optimizer, rec, 3)
    second = tail.read()
    assert second.start == 6 and second.steps.tolist() == [6, 7, 8]
    assert tail.offset == 9 * STEP_ROW.itemsize
    assert len(tail.read().steps) == 0  # nothing new: nothing read
    whole = open_path(tmp_path / "run")
    np.testing.assert_array_equal(np.concatenate([first.steps, second.steps]), whole.steps)
    np.testing.assert_array_equal(np.concatenate([first.losses, second.losses]), whole.losses)


def test_tail_waits_for_a_row_cut_short_and_notices_a_restart(tmp_path):
    file = tmp_path / STEPS
    rows = np.array([(0, np.nan), (1, 0.5), (2, 0.25)], dtype=STEP_ROW).tobytes()
    file.write_bytes(rows[:20])  # one row and 4 bytes of the next
    tail = Tail(file)
    assert tail.read().steps.tolist() == [0] and tail.partial == 4
    file.write_bytes(rows)
    got = tail.read()
    assert got.start == 1 and got.steps.tolist() == [1, 2] and got.losses.tolist() == [0.5, 0.25]
    again = np.array([(0, 9.0)], dtype=STEP_ROW).tobytes()
    file.write_bytes(again)  # a new recording over the old: shorter, and another first row
    restarted = tail.read()
    assert restarted.restarted and restarted.start == 0 and restarted.losses.tolist() == [9.0]
    file.write_bytes(again + rows[16:])  # as long as before, but started again
    tail2 = Tail(file)
    tail2.read()
    file.write_bytes(rows)
    assert tail2.read().restarted


def test_skip_starts_after_the_rows_already_there(tmp_path):
    _record(tmp_path / "run", 4)
    tail = Tail(tmp_path / "run" / STEPS)
    tail.skip()
    assert tail.rows == 5 and len(tail.read().steps) == 0


def test_a_truncated_snapshot_file_and_a_corrupt_index_are_reported_not_raised(tmp_path):
    folder = tmp_path / "run"
    _record(folder, 4)
    snapshots = folder / "snapshots.f32"
    size = snapshots.stat().st_size
    with snapshots.open("r+b") as handle:
        handle.truncate(size - 6)  # the last snapshot cut short
    run = Recording(folder)
    run.refresh_index()
    rows = run.tail.read()
    summary = run.summary(run.tail.rows)
    assert summary["rows"] == 5 and summary["snapshots"] == 4
    problems = " ".join(summary["problems"])
    assert "cut short" in problems and "1 of 5 steps have no snapshot" in problems
    assert len(open_path(folder)) == 4  # what the reader says is what open_path reads
    (folder / "index.json").write_text('{"names": ["a"], "shap', encoding="utf-8")
    assert run.refresh_index()
    summary = run.summary(run.tail.rows)
    assert summary["parameters"] is None and "index.json is not" in summary["problems"][0]
    assert len(rows.steps) == 5  # the steps are still there to draw
    assert not run.refresh_index()  # unchanged: not read again


def test_runs_lists_every_kind_and_skips_hidden_folders_and_links_out(tmp_path):
    root = tmp_path / "runs"
    _record(root / "group" / "a", 3)
    (root / "group" / "a" / CACHE).mkdir()
    np.savez(root / "group" / "a" / CACHE / "plane.npz", xs=[0.0], ys=[0.0], loss=[[1.0]])
    np.savez(root / "s.npz", xs=[0.0, 1.0], ys=[0.0], loss=[[1.0, 2.0]])
    np.savez(root / "study.npz", description=json.dumps({"kind": "phase"}))
    (root / "h.json").write_text(json.dumps({"eigenvalues": [3.0, 1.0]}), encoding="utf-8")
    (root / "other.json").write_text("[1, 2]", encoding="utf-8")
    (root / "broken.npz").write_bytes(b"PK\x03\x04 not a zip")
    outside = tmp_path / "outside"
    _record(outside / "b", 3)
    (root / "link").symlink_to(outside / "b", target_is_directory=True)
    (root / "in").symlink_to(root / "group", target_is_directory=True)
    runs = Runs(root)
    assert runs.scan() == [
        Entry("group/a", "recording"),
        Entry("h.json", "spectrum"),
        Entry("s.npz", "surface"),
        Entry("study.npz", "study"),
    ]
    assert read_file_run(root / "s.npz", "surface")["loss"] == [[1.0, 2.0]]
    assert read_file_run(root / "h.json", "spectrum")["eigenvalues"] == [3.0, 1.0]
    assert "cannot be read" in read_file_run(root / "broken.npz", "surface")["problems"][0]


def test_a_folder_not_there_yet_is_followed_until_it_is(tmp_path):
    runs = Runs(tmp_path / "runs")  # the board started before the first training
    watcher = Watcher(runs)
    assert watcher.poll() == [("runs", {"runs": [], "truncated": False})]
    _record(tmp_path / "runs" / "a", 3)
    (listed,) = [data for event, data in watcher.poll() if event == "runs"]
    assert [run["name"] for run in listed["runs"]] == ["a"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(GdscopeError, match="is not a folder of runs"):
        Runs(tmp_path / "file")


def test_pages_polling_at_once_share_one_walk_of_the_folder(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    _record(root / "a", 3)
    runs = Runs(root)
    walks = []
    walk = runs._walk
    monkeypatch.setattr(runs, "_walk", lambda: walks.append(1) or walk())
    first = [Watcher(runs, shared_s=60.0) for _ in range(3)]
    assert all(w.poll()[0][1]["runs"][0]["name"] == "a" for w in first) and len(walks) == 1
    _record(root / "b", 3)
    assert [e.name for e in runs.scan(within_s=60.0)] == ["a"]  # the listing shared, as it was
    assert [e.name for e in runs.scan()] == ["a", "b"] and len(walks) == 2  # looked again


@pytest.mark.parametrize("name", ["../outside/b", "/etc/passwd", "group/../../outside/b",
                                  "link", "link/index.json", "a\\..\\b", ""])  # fmt: skip
def test_a_name_leading_outside_is_refused(tmp_path, name):
    root = tmp_path / "runs"
    _record(root / "group" / "a", 3)
    _record(tmp_path / "outside" / "b", 3)
    (root / "link").symlink_to(tmp_path / "outside" / "b", target_is_directory=True)
    with pytest.raises(OutsideRuns):
        Runs(root).path(name)


def test_names_inside_are_found_and_others_are_no_run(tmp_path):
    root = tmp_path / "runs"
    _record(root / "group" / "a", 3)
    runs = Runs(root)
    assert runs.path("group/a") == (root / "group" / "a").resolve()
    assert runs.kind("group/a") == "recording"
    for name in ("group", "nothing", "group/a/.board", "group/a/steps.bin"):
        with pytest.raises(NoSuchRun):
            runs.kind(name)
    with pytest.raises(GdscopeError, match="not a folder"):
        Runs(root / "group" / "a" / "steps.bin")


def test_landscape_is_cached_and_its_command_is_exact(tmp_path):
    from gdscope.examples.mlp import make_loader, make_model

    folder = tmp_path / "run"
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(model, path=folder, optimizer=optimizer)
    for x, y in make_loader(batch_size=300):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        rec.step(loss)
    heard: list[dict] = []
    compute_landscape(
        Subject((folder,), ("run",), (6,), tmp_path), MLP, points=13, report=heard.append
    )
    assert [m["stage"] for m in heard if m["finished"]] == ["coarse", "line", "refined"]
    coarse, refined = cached(plane_file(folder, 6, 11)), cached(plane_file(folder, 6, 13))
    assert coarse is not None and refined is not None
    assert (coarse["xs"][0], coarse["xs"][-1]) == (refined["xs"][0], refined["xs"][-1])
    assert len(refined["xs"]) == 13 and len(refined["path_x"]) == 6
    # The command shown computes the same numbers (the recording holds those 6 snapshots).
    from gdscope.cli.main import main
    from gdscope.jobs.records import read_record

    out = tmp_path / "again.npz"
    argv = [*refined["command"][2:-2], "--out", str(tmp_path / "f.png"), "--save", str(out)]
    assert main(["landscape", *argv]) == 0
    # ... and the record the board's PNG of it carries is the one the command wrote.
    assert landscape_record(refined["command"]) == read_record(tmp_path / "f.png")
    with np.load(out) as again:
        np.testing.assert_array_equal(again["loss"], np.array(refined["loss"]))
        np.testing.assert_array_equal(again["xs"], np.array(refined["xs"]))
    heard.clear()
    compute_landscape(
        Subject((folder,), ("run",), (6,), tmp_path), MLP, points=13, report=heard.append
    )
    assert all(m["finished"] for m in heard)  # the second visit: everything from the cache
    assert not list((folder / CACHE).glob("*.resume.npz"))


def test_a_shared_plane_of_two_runs_is_what_its_command_computes_and_is_cached(tmp_path):
    from gdscope.cli.main import main
    from gdscope.jobs.records import read_record

    root = tmp_path / "runs"
    record_mlp(root / "sgd", lr=0.1, batches=5)
    record_mlp(root / "fast", lr=0.5, batches=3)
    subject = Subject((root / "sgd", root / "fast"), ("sgd", "fast"), (6, 4), root)
    heard: list[dict] = []
    compute_landscape(subject, MLP, points=13, report=heard.append)
    assert [m["stage"] for m in heard if m["finished"]] == ["coarse", "refined"]  # no line
    assert subject.plane_file(13).parent == root / CACHE  # the root's cache, not a run's
    assert subject.newest() == (6, 4)
    coarse, refined = cached(subject.plane_file(11)), cached(subject.plane_file(13))
    assert coarse is not None and refined is not None
    assert [r["name"] for r in refined["runs"]] == ["sgd", "fast"]
    assert [len(r["path_x"]) for r in refined["runs"]] == [6, 4]
    command = refined["command"]
    assert command[command.index("--checkpoint") + 1] == str(root / "sgd" / CACHE / "snapshot-5.pt")
    assert [command[i + 1] for i, a in enumerate(command) if a == "--path"] == [
        str(root / "sgd"), str(root / "fast")]  # fmt: skip
    out = tmp_path / "again.npz"
    argv = [*command[2:-2], "--out", str(tmp_path / "f.png"), "--save", str(out)]
    assert main(["landscape", *argv]) == 0
    assert landscape_record(command) == read_record(tmp_path / "f.png")
    with np.load(out) as again, np.load(subject.plane_file(13)) as board:
        np.testing.assert_array_equal(again["loss"], np.array(refined["loss"]))
        np.testing.assert_array_equal(again["xs"], np.array(refined["xs"]))
        np.testing.assert_array_equal(again["ys"], np.array(refined["ys"]))
        for key in ("path_x", "path_y", "path_x_1", "path_y_1"):
            np.testing.assert_array_equal(again[key], board[key])
    heard.clear()
    compute_landscape(subject, MLP, points=13, report=heard.append)
    assert all(m["finished"] for m in heard)  # read back from the cache
    assert not list((root / CACHE).glob("*.resume.npz"))


def test_runs_of_different_layouts_share_no_plane(tmp_path):
    root = tmp_path / "runs"
    record_mlp(root / "mlp", lr=0.1, batches=3)
    _record(root / "small", 3)
    subject = Subject((root / "mlp", root / "small"), ("mlp", "small"), (4, 4), root)
    with pytest.raises(GdscopeError, match="runs mlp and small do not share one parameter"):
        compute_landscape(subject, MLP, points=11)
    with pytest.raises(GdscopeError, match="1 to 8 recordings"):
        Subject((root / "mlp",) * 9, tuple("abcdefghi"), (4,) * 9, root)
    with pytest.raises(GdscopeError, match="named twice"):
        Subject((root / "mlp",) * 2, ("mlp", "mlp"), (4, 4), root)


def test_a_phase_study_is_read_cell_by_cell(tmp_path):
    from gdscope.cli.main import main

    saved = tmp_path / "p.npz"
    argv = ["phase", "--x", "lr=0.01:1:3", "--y", "momentum=0:0.9:2", "--epochs", "5",
            "--out", str(tmp_path / "p.png"), "--save", str(saved)]  # fmt: skip
    assert main(argv) == 0
    assert Runs(tmp_path).scan() == [Entry("p.npz", "study")]
    read = read_file_run(saved, "study")
    with np.load(saved) as columns:
        assert read["options"]["lr"] == columns["option_lr"].tolist()
        finals = [None if not np.isfinite(v) else v for v in columns["metric_final_loss"].tolist()]
        assert read["metrics"]["final_loss"] == finals
    assert [a["name"] for a in read["description"]["axes"]] == ["momentum", "lr"]
    assert len(read["options"]["momentum"]) == 6 and read["problems"] == []


def _rows(file, rows) -> None:
    with open(file, "ab") as handle:
        np.array(rows, dtype=STEP_ROW).tofile(handle)


def test_validation_rows_are_read_as_they_are_appended_and_sent_as_events(tmp_path):
    root = tmp_path / "runs"
    _record(root / "run", 3)
    watcher = Watcher(Runs(root))
    watcher.poll()  # the first poll: the rows already there are not events
    _rows(root / "run" / VALIDATION, [(2, 0.5), (3, 0.25)])
    events = watcher.poll()
    assert [e for e, _ in events if e != "runs"] == ["validation"]
    sent = dict(events)["validation"]
    assert (sent["start"], sent["steps"], sent["losses"]) == (0, [2, 3], [0.5, 0.25])
    with open(root / "run" / VALIDATION, "ab") as handle:  # a row cut short: not yet
        handle.write(np.array([(4, 0.125)], dtype=STEP_ROW).tobytes()[:9])
    assert not [e for e, _ in watcher.poll() if e == "validation"]
    read = read_recording(root / "run")
    assert read["validation_rows"]["steps"] == [2, 3] and read["validation"] == 2
    assert any(VALIDATION in problem for problem in read["problems"])


def test_a_long_run_is_thinned_to_every_runs_lowest_and_highest_loss(tmp_path):
    from gdscope.jobs.board import Rows

    rng = np.random.default_rng(0)
    losses = rng.random(50_001)
    losses[12_345], losses[40_000], losses[7] = 50.0, -3.0, np.nan  # a spike, a dip, a gap
    rows = Rows(10, np.arange(50_001, dtype=np.int64), losses)
    sent = thin(rows, 1000)
    assert sent["thinned"] and len(sent["steps"]) <= 1000 and sent["end"] == 50_011
    assert sent["steps"][0] == 0 and sent["steps"][-1] == 50_000
    assert {12_345, 40_000} <= set(sent["steps"]) and sent["steps"] == sorted(sent["steps"])
    assert [losses[s] for s in sent["steps"]] == sent["losses"]
    short = thin(Rows(0, np.arange(5, dtype=np.int64), np.ones(5)), 1000)
    assert not short["thinned"] and short["steps"] == list(range(5))
    _record(tmp_path / "run", 30)
    whole = read_recording(tmp_path / "run", limit=20)
    assert len(whole["steps"]) <= 20 and whole["end"] == whole["rows"] == 31  # with step 0


@given(
    losses=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=400),
    limit=st.integers(4, 60),
)
def test_thinning_keeps_the_ends_and_every_runs_extremes_within_the_limit(losses, limit):
    from gdscope.jobs.board import Rows

    values = np.array(losses, dtype=np.float64)
    rows = Rows(0, np.arange(len(values), dtype=np.int64) * 3, values)
    sent = thin(rows, limit)
    steps = np.array(sent["steps"]) // 3
    assert len(steps) <= max(limit, len(values)) and sent["thinned"] == (len(values) > limit)
    assert steps[0] == 0 and steps[-1] == len(values) - 1 and (np.diff(steps) > 0).all()
    finite = values[~np.isnan(values)]
    if len(values) > limit:
        assert len(steps) <= limit
    if len(finite):  # the lowest and the highest loss are always among the rows sent
        assert finite.min() in values[steps] and finite.max() in values[steps]


def test_a_chart_record_replays_the_rows_it_drew_and_refuses_a_run_recorded_over(tmp_path):
    from gdscope.jobs.records import read_record
    from gdscope.jobs.replay import replay

    _record(tmp_path / "a", 5)
    _record(tmp_path / "b", 3)
    _rows(tmp_path / "a" / VALIDATION, [(5, 0.5)])
    rec = curves_record([("a", tmp_path / "a"), ("b", tmp_path / "b")], "loss")
    assert [(r["rows"], r["validation"]) for r in rec["runs"]] == [(6, 1), (4, 0)]  # with step 0
    from gdscope.files import save_figure
    from gdscope.jobs.board import draw_curves

    first = save_figure(draw_curves(rec), tmp_path / "loss.png", config=rec)
    assert read_record(first) == json.loads(json.dumps(rec))
    _rows(tmp_path / "a" / STEPS, [(6, 0.1)])  # the run goes on: the figure drew 6 rows
    again = replay(first, tmp_path / "again.png")
    assert again.read_bytes() == first.read_bytes()
    (tmp_path / "b" / STEPS).write_bytes(np.array([(1, 9.0)] * 3, dtype=STEP_ROW).tobytes())
    with pytest.raises(GdscopeError, match="not the one the figure drew"):
        replay(first, tmp_path / "third.png")
    with pytest.raises(GdscopeError, match="no chart"):
        curves_record([("a", tmp_path / "a")], "accuracy")


@pytest.mark.filterwarnings("ignore:.*beyond the tuning grid")
def test_network_studies_keep_each_cells_curve_and_shootouts_their_winners(tmp_path):
    from gdscope.jobs.records import read_record
    from gdscope.jobs.studies import make_compare, make_phase
    from gdscope.jobs.studyconfig import CompareConfig, PhaseConfig, RunSettings
    from gdscope.jobs.studyfiles import Outputs
    from tests.jobs.test_studies_network import NETWORK

    phase = PhaseConfig("lr=0.1,1", "momentum=0,0.5", network=NETWORK)
    make_phase(phase, Outputs(tmp_path / "p.png", save=tmp_path / "p.npz"))
    compare = CompareConfig(("sgd", "adam"), tune=("lr=0.01:1:3:log",), network=NETWORK,
                            run=RunSettings())  # fmt: skip
    make_compare(compare, Outputs(tmp_path / "c.png", save=tmp_path / "c.json"))
    assert {e.name: e.kind for e in Runs(tmp_path).scan()} == {
        "p.npz": "study",
        "c.json": "shootout",
    }
    study = read_file_run(tmp_path / "p.npz", "study")
    assert study["record"] == read_record(tmp_path / "p.png")  # what made it: replay remakes it
    with np.load(tmp_path / "p.npz") as saved:
        assert np.array(study["curves"]["losses"], dtype=float).shape == saved["losses"].shape
        np.testing.assert_array_equal(np.array(study["curves"]["losses"][3], dtype=float),
                                      saved["losses"][3])  # fmt: skip
    shootout = read_file_run(tmp_path / "c.json", "shootout")
    assert shootout["problems"] == [] and {r["optimizer"] for r in shootout["table"]} == {
        "sgd",
        "adam",
    }
    assert set(shootout["curves"]) == {"sgd", "adam"}
    assert all(len(curve) == 6 for curve in shootout["curves"].values())
    assert shootout["record"] == read_record(tmp_path / "c.png")
