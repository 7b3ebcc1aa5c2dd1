"""The one runner of many at once: auto's choice between vmap and the loop (its decision rule,
with given timings), chunks, results and resume files, the loop over chunks, and the one
evaluator of many parameter sets against plain torch modules."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gdscope import interrupts, modules
from gdscope.engines.runner import (
    FIRST_CHUNK,
    LOOP_CHUNK,
    TIMED_POINTS,
    TRIAL_BUDGET,
    Decision,
    GrowingChunks,
    Results,
    choose_strategy,
    evaluate_many,
    memory_chunk,
    run_chunks,
    section,
    vmap_per_item,
)
from gdscope.errors import GdscopeError


def fake_run(costs: dict[str, float | dict[int, float]]):
    """A ``run`` for ``choose_strategy`` whose timings are given: the decision rule, not the
    clock, is under test. Records what was timed."""
    calls: list[tuple[str, int]] = []

    def run(name: str, count: int) -> float | None:
        calls.append((name, count))
        cost = costs[name]
        return cost if isinstance(cost, float) else cost.get(count, math.inf)

    return run, calls


LOOP_TRIALS = [("loop", 1), ("loop", TIMED_POINTS)]
"""How every choice starts: the loop warmed up on one point, then timed."""
VMAP_WARM = [("vmap", 1)]
"""Then vmap warmed up on one point."""


def linear(fixed: float, per_item: float) -> dict[int, float]:
    """vmap's seconds per item by chunk: a fixed cost per chunk and a cost per item."""
    return {n: fixed / n + per_item for n in (1, 4, 10, 16, 20, 64, 100, 121, 256, 1024)}


@pytest.mark.parametrize(
    ("vmap", "limit", "expected", "sizes"),
    [
        # an MLP on a CPU: a fixed 20 s per chunk, 0.1 s a point: slower than the loop over
        # 1 or 4 points, far faster over 1,024
        (linear(20, 0.1), 1024, ("vmap", 1024), [1, 4]),
        # a CNN on a CPU: grouped convolutions cost more per point than the loop's
        (linear(0, 6), 1024, ("loop", LOOP_CHUNK), [1, 4]),
        # small chunks less efficient than the fit of 1 and 4 says: timed on 16 too
        ({1: 20.1, 4: 6.0, 16: 1.5}, 1024, ("vmap", 1024), [1, 4, 16]),
        # predicted more than HOPELESS times the loop's: not timed further
        ({1: 20.1, 4: 7.0, 16: 1.5}, 1024, ("loop", LOOP_CHUNK), [1, 4]),
        # the chunk limit (memory, the points to do, or the user's --chunk) caps the chunk
        # predicted for
        (linear(20, 0.1), 100, ("vmap", 100), [1, 4]),
        (linear(20, 0.1), 10, ("loop", LOOP_CHUNK), [1, 4]),  # 2.1 s a point over 10
        (linear(20, 0.1), 20, ("loop", LOOP_CHUNK), [1, 4, 16, 20]),  # 1.1 s: timed on
        ({1: 0.9}, 1, ("vmap", 1), [1]),
    ],
)
def test_choose_strategy_keeps_the_faster_by_vmaps_predicted_time(vmap, limit, expected, sizes):
    run, calls = fake_run({"loop": 1.0, "vmap": vmap})
    choice = choose_strategy(run, limit=limit)
    assert choice.failure is None and choice.memory_format == "contiguous"
    assert (choice.method, choice.chunk) == expected
    assert calls == [*LOOP_TRIALS, *VMAP_WARM, *(("vmap", n) for n in sizes)]
    assert choice.trials == (("loop", TIMED_POINTS, 1.0), *(("vmap", n, vmap[n]) for n in sizes))


def test_the_mlp_case_of_issue_18_picks_vmap_on_a_121_point_grid():
    # 121 points: an old rule stopped after vmapping 4 points (its trial could cost only 10%
    # of the grid's time) and kept the loop where vmap was 2× faster over the whole grid.
    run, calls = fake_run({"loop": 5.0, "vmap": linear(41, 4)})
    choice = choose_strategy(run, limit=121, work=121 * 16)
    assert (choice.method, choice.chunk) == ("vmap", 121)
    assert calls == [*LOOP_TRIALS, *VMAP_WARM, ("vmap", 1), ("vmap", 4)]
    assert vmap_per_item([(1, 45.0), (4, 14.25)], 121) == pytest.approx(41 / 121 + 4)


def test_a_larger_chunk_is_timed_only_while_the_trials_budget_allows():
    # vmap predicted between the loop's time and HOPELESS times it: a larger chunk could tell
    # more, but timing 16 points (16 × 1.6 s) would take the trials past their share of the
    # loop's time for the whole work (TRIAL_BUDGET × 200 × 1 s = 6 s here), so they stop
    vmap = linear(1.2, 1.5)
    run, calls = fake_run({"loop": 1.0, "vmap": vmap})
    assert 16 * vmap[16] > TRIAL_BUDGET * 200  # (the 16 points alone)
    choice = choose_strategy(run, limit=1024, work=200)
    assert calls[-2:] == [("vmap", 1), ("vmap", 4)] and choice.method == "loop"
    run, calls = fake_run({"loop": 1.0, "vmap": vmap})
    choose_strategy(run, limit=1024, work=20_000)  # a larger grid affords it
    assert ("vmap", 16) in calls


@pytest.mark.parametrize(("other", "expected"), [(0.4, "channels_last"), (1.5, "contiguous")])
def test_choose_strategy_times_the_loop_in_both_memory_layouts(other, expected):
    run, calls = fake_run({"loop": 1.0, "loop/channels_last": other, "vmap": 3.0})
    choice = choose_strategy(run, limit=1024, loops=("loop", "loop/channels_last"))
    assert (choice.method, choice.memory_format) == ("loop", expected)
    assert calls[:4] == [("loop", 1), ("loop", TIMED_POINTS), ("loop/channels_last", 1),
                         ("loop/channels_last", TIMED_POINTS)]  # fmt: skip
    # vmap is compared with the faster loop
    run, _ = fake_run({"loop": 1.0, "loop/channels_last": 0.4, "vmap": 0.6})
    assert choose_strategy(run, limit=1024, loops=("loop", "loop/channels_last")).method == "loop"


def test_a_vmap_that_raises_ends_the_trials_with_the_loop_and_says_why():
    def run(name: str, count: int) -> float | None:
        if name == "vmap":
            raise RuntimeError("vmap: .item() is not supported\nmore")
        return 1.0

    choice = choose_strategy(run, limit=64)
    assert choice.method == "loop" and choice.trials[-1][:2] == ("vmap", 1)
    assert math.isnan(choice.trials[-1][2])
    assert choice.failure == "vmap failed (RuntimeError: vmap: .item() is not supported)"


def test_ctrl_c_during_the_trials_keeps_the_loop_timed_so_far():
    answers = iter([1.0, 2.0, None])  # the loop warmed and timed; Ctrl-C at vmap's warm-up
    choice = choose_strategy(lambda name, count: next(answers), limit=64)
    assert (choice.method, choice.trials) == ("loop", (("loop", TIMED_POINTS, 2.0),))
    assert choose_strategy(lambda name, count: None, limit=64).trials == ()


@settings(max_examples=200, deadline=None)
@given(
    loop=st.floats(1e-4, 10),
    fixed=st.floats(0, 50),
    per_item=st.floats(1e-5, 20),
    limit=st.integers(1, 2048),
    work=st.floats(1, 1e6),
)
def test_choose_strategy_properties(loop, fixed, per_item, limit, work):
    # vmap's time as the model behind the rule has it: a fixed part per chunk, a part per point
    run, _ = fake_run({"loop": loop, "vmap": LinearEverywhere(fixed, per_item)})
    choice = choose_strategy(run, limit=limit, work=work)
    loops = [t for t in choice.trials if t[0] == "loop"]
    assert [t[1] for t in loops] == [TIMED_POINTS]  # after one untimed
    vmaps = [t[1:] for t in choice.trials if t[0] == "vmap"]
    sizes = [size for size, _ in vmaps]
    assert sizes == [min(4**k, limit) for k in range(len(sizes))] and len(set(sizes)) == len(sizes)
    # a chunk beyond the second is timed only where vmap's trials stay within their budget
    spent = fixed + per_item + sum(n * s for n, s in vmaps)  # the warm-up, then each chunk
    assert len(vmaps) <= 2 or spent <= TRIAL_BUDGET * work * loop * (1 + 1e-9)
    if choice.method == "vmap":  # what the work costs by vmap is what the model says
        assert choice.chunk == limit
        predicted = vmap_per_item(vmaps[-2:], choice.chunk)
        assert predicted < loop
        if len(vmaps) > 1:
            assert predicted == pytest.approx(fixed / choice.chunk + per_item, rel=1e-6, abs=1e-9)
    else:
        assert choice.chunk == LOOP_CHUNK


class LinearEverywhere(dict):
    """``linear`` for any chunk."""

    def __init__(self, fixed: float, per_item: float) -> None:
        super().__init__()
        self.fixed, self.per_item = fixed, per_item

    def get(self, n, default=None):
        return self.fixed / n + self.per_item


def test_a_decision_is_data():
    decision = Decision("vmap", 64, trials=(("vmap", 16, 0.5),))
    with pytest.raises(AttributeError):
        decision.method = "loop"  # type: ignore[misc]
    assert decision.memory_format == "contiguous" and decision.failure is None


def test_growing_chunks_cover_every_item_once_as_the_size_changes():
    sizes = GrowingChunks(100)
    seen: list[int] = []
    for chunk in sizes.over(np.arange(250)):
        seen += chunk.tolist()
        sizes.took(len(chunk), 0.0, polled=True)
    assert seen == list(range(250))
    assert GrowingChunks(5).next == min(FIRST_CHUNK, 5)
    with pytest.raises(GdscopeError, match="chunk must be >= 1"):
        GrowingChunks(0)


def test_memory_chunk_follows_free_memory_and_refuses_one_that_does_not_fit(monkeypatch):
    monkeypatch.setattr(modules, "free_memory", lambda device: 1 << 20)
    cpu = torch.device("cpu")
    assert memory_chunk(1024, cpu, limit=10_000) == (1 << 20) // 4 // 1024
    assert memory_chunk(1024, cpu, limit=7) == 7
    assert memory_chunk(1 << 30, cpu, limit=7) == 1
    with pytest.raises(GdscopeError, match="needs 1024 MiB, 1 MiB free"):
        memory_chunk(1 << 30, cpu, limit=7, refuse="needs {need} MiB, {free} MiB free")


def test_results_resume_from_their_file_and_refuse_another_computations(tmp_path):
    path = tmp_path / "progress.npz"
    seen: list[tuple[int, int]] = []
    first = Results(6, columns={"curve": np.full((6, 3), np.nan)}, resume=path, key="a",
                    differs="other settings", progress=lambda *p: seen.append(p))  # fmt: skip
    first.put(np.array([0, 1]), {"loss": np.array([1.0, 2.0]), "curve": np.ones((2, 3))})
    first.put(np.array([0, 1]), {"flag": np.array([True, False])}, fill=0)
    first.tags["method"] = "vmap"
    first.finish(np.array([0, 1]))
    assert seen == [(2, 6)]
    again = Results(6, columns={"curve": np.full((6, 3), np.nan)}, resume=path, key="a",
                    differs="other settings")  # fmt: skip
    assert again.todo().tolist() == [2, 3, 4, 5] and again.tags == {"method": "vmap"}
    np.testing.assert_array_equal(again.columns["loss"][:2], [1.0, 2.0])
    assert np.isnan(again.columns["loss"][2:]).all() and again.columns["flag"].dtype == bool
    np.testing.assert_array_equal(again.columns["curve"][:2], np.ones((2, 3)))
    with pytest.raises(GdscopeError, match="another computation \\(other settings\\)"):
        Results(6, resume=path, key="b", differs="other settings")


def test_results_saved_in_a_shape_read_back_flat(tmp_path):
    path = tmp_path / "plane.npz"
    grid = Results(6, columns={"loss": np.full(6, np.nan)}, resume=path, key="k", shape=(2, 3),
                   done="done")  # fmt: skip
    grid.put(np.array([4]), {"loss": np.array([7.0])})
    grid.finish(np.array([4]))
    with np.load(path) as saved:
        assert saved["loss"].shape == (2, 3) and saved["done"].tolist() == [[0, 0, 0], [0, 1, 0]]
    back = Results(6, columns={"loss": np.full(6, np.nan)}, resume=path, key="k", shape=(2, 3),
                   done="done")  # fmt: skip
    assert back.todo().tolist() == [0, 1, 2, 3, 5] and back.columns["loss"][4] == 7.0


def test_run_chunks_stops_between_chunks_and_on_a_stopped_chunk():
    kept: list[list[int]] = []
    chunks = [np.arange(i, i + 2) for i in range(0, 10, 2)]
    run_chunks(chunks, lambda c, r: kept.append(r), compute=lambda c: c.tolist(),
               stop=lambda: len(kept) >= 2)  # fmt: skip
    assert kept == [[0, 1], [2, 3]]
    kept.clear()
    run_chunks(chunks, lambda c, r: kept.append(r),
               compute=lambda c: None if c[0] == 4 else c.tolist())  # fmt: skip
    assert kept == [[0, 1], [2, 3]]


def test_a_section_keeps_what_finished_on_a_keyboard_interrupt_or_raises_it():
    done = []
    with section():
        done.append(1)
        raise KeyboardInterrupt
    assert done == [1]
    with pytest.raises(KeyboardInterrupt), section(keep_on_interrupt=False):
        raise KeyboardInterrupt
    assert not interrupts.requested()


class _Norm(nn.Module):
    """A small classifier with BatchNorm (running statistics as buffers) and a frozen layer."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.norm, self.b = nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Linear(5, 4)
        self.a.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.norm(self.a(x))))


@pytest.mark.parametrize("method", ["vmap", "loop"])
def test_evaluate_many_equals_each_set_loaded_into_a_plain_module(method):
    torch.manual_seed(0)
    model = _Norm().double().eval()
    sets = []
    for k in range(3):
        torch.manual_seed(10 + k)
        other = _Norm().double()
        other.norm.running_mean.normal_()
        other.norm.running_var.uniform_(0.5, 2.0)
        sets.append(other)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    buffers = [n for n, _ in model.named_buffers()]
    tensors = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in sets])
               for n in names}  # fmt: skip
    tensors.update({n: torch.stack([dict(m.named_buffers())[n] for m in sets]) for n in buffers})
    x = torch.randn(10, 3, dtype=torch.float64)
    y = torch.randint(0, 4, (10,))
    batches = [(x[:6], y[:6]), (x[6:], y[6:])]  # uneven: the mean is over samples
    loss, accuracy = evaluate_many(model, tensors, batches, nn.CrossEntropyLoss(), method=method)
    for k, other in enumerate(sets):
        plain = copy.deepcopy(model)
        state = {n: dict(other.named_parameters())[n] for n in names}
        state.update({n: dict(other.named_buffers())[n] for n in buffers})
        plain.load_state_dict(state, strict=False)  # the frozen weight stays the model's
        with torch.no_grad():
            out = plain(x)
        expected = nn.functional.cross_entropy(out, y)
        assert float(loss[k]) == pytest.approx(float(expected), rel=1e-12)
        assert accuracy is not None
        assert float(accuracy[k]) == pytest.approx(float((out.argmax(-1) == y).double().mean()))


def test_evaluate_many_gives_no_accuracy_for_a_regression():
    model = nn.Linear(2, 1)
    tensors = {n: torch.stack([p.detach()] * 2) for n, p in model.named_parameters()}
    x = torch.randn(4, 2)
    loss, accuracy = evaluate_many(model, tensors, [(x, torch.zeros(4, 1))], nn.MSELoss())
    assert accuracy is None and loss.shape == (2,)
    with torch.no_grad():
        assert float(loss[0]) == pytest.approx(float(nn.MSELoss()(model(x), torch.zeros(4, 1))))
