"""The landmark-figure examples on the digits (small configurations; the full ones are slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from gdscope import interrupts
from gdscope.errors import GdscopeError
from gdscope.jobs.papers import make_batch_size, make_skip
from gdscope.nets.convexity import NON_CONVEX, ConvexityOptions
from tests.conftest import require

SMALL = ConvexityOptions(points=2, samples=32)


@pytest.fixture(autouse=True)
def _digits():
    require("sklearn.datasets")


def test_skip_maps_both_networks_and_says_what_it_measured(tmp_path):
    lines: list[str] = []
    out = make_skip(tmp_path, epochs=1, grid=3, convexity=SMALL, blocks=1, log=lines.append)
    assert [p.name for p in out.written] == ["skip.json", "skip.png"] and not out.interrupted
    saved = json.loads((tmp_path / "skip.json").read_text())
    assert set(saved["networks"]) == {"residual", "plain"} and saved["threshold"] == NON_CONVEX
    for name, result in out.results.items():
        found = result.convexity
        assert found is not None and found.done == 4 and found.samples == 32
        assert saved["networks"][name]["non_convex"] == found.non_convex()
        assert result.surface.loss.shape == (3, 3)
    assert any("s in all on this CPU" in line for line in lines)
    with pytest.raises(GdscopeError, match="already exists"):
        make_skip(tmp_path, epochs=1, grid=3, convexity=SMALL, blocks=1, log=lines.append)


def test_ctrl_c_after_the_first_network_keeps_its_column(tmp_path, monkeypatch):
    lines: list[str] = []
    monkeypatch.setattr(interrupts, "requested", lambda: any("residual:" in s for s in lines))
    out = make_skip(tmp_path, epochs=1, grid=3, convexity=SMALL, blocks=1, log=lines.append)
    assert out.interrupted and list(out.results) == ["residual"]
    assert (tmp_path / "skip.png").is_file()


def test_batch_size_trains_to_the_same_loss_and_measures_both(tmp_path):
    from gdscope.examples import digits
    from gdscope.nets.curvature import curvature

    out = make_batch_size(tmp_path, sizes={"small": (128, 0.05), "large": (512, 0.1)},
                          target=1.0, points=5, log=lambda _: None)  # fmt: skip
    saved = json.loads((tmp_path / "batch-size.json").read_text())
    assert saved == json.loads(json.dumps(out.numbers))
    runs = saved["runs"]
    assert [runs[k]["batch"] for k in ("small", "large")] == [128, 512]
    for run in runs.values():
        assert run["loss"] < 1.0 and run["top_eigenvalue"] > 0
    line = np.array(saved["line"]["train"]["loss"])
    xs = np.array(saved["line"]["train"]["xs"])
    assert xs[0] == -0.5 and xs[-1] == 1.5
    inside = line[(xs >= 0) & (xs <= 1)]
    assert saved["barrier"] == pytest.approx(inside.max() - max(inside[0], inside[-1]))
    # the top eigenvalue is the curvature code's at the small batch's solution, trained again
    model = digits.make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = digits.make_loader(128, shuffle=True)
    train = [digits.make_dataset("train").tensors]
    for _ in range(runs["small"]["epochs"]):
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    model.eval()
    top = curvature(model, train, nn.CrossEntropyLoss(), top=1).eigenvalues[0]
    assert top == pytest.approx(runs["small"]["top_eigenvalue"], rel=1e-4)


@pytest.mark.slow
def test_the_full_batch_size_example_finds_the_large_batch_sharper(tmp_path):
    out = make_batch_size(tmp_path, log=lambda _: None)
    runs = out.numbers["runs"]
    assert runs["large"]["top_eigenvalue"] > 1.3 * runs["small"]["top_eigenvalue"]
