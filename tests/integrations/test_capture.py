"""What both framework callbacks share: the optimizer's name, the options, a missing framework."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from gdscope.errors import GdscopeError
from gdscope.integrations.capture import Capture, unwrap_optimizer


class Wrapper(torch.optim.Optimizer):
    """Like accelerate's ``AcceleratedOptimizer``: an ``Optimizer`` around the real one."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer


def test_the_recording_names_the_optimizer_inside_a_wrapper():
    sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    assert unwrap_optimizer(Wrapper(Wrapper(sgd))) is sgd
    assert unwrap_optimizer(sgd) is sgd
    assert unwrap_optimizer(None) is None
    assert unwrap_optimizer(object()) is None


def test_capture_steps_with_the_mean_or_the_sum_of_the_losses():
    capture = Capture(None, {})
    capture.start(torch.nn.Linear(2, 1), None)
    capture.loss(torch.tensor(1.0))
    capture.loss(3.0)
    capture.step()
    capture.loss(0.25)
    capture.loss(0.5)
    capture.step(shares=True)
    capture.step()  # no loss reported
    losses = capture.result().losses
    assert losses[1:3].tolist() == [2.0, 0.75] and torch.isnan(torch.tensor(losses[[0, 3]])).all()
    with pytest.raises(GdscopeError, match="takes the model and optimizer from the trainer"):
        Capture(None, {"optimizer": None})
    with pytest.raises(GdscopeError, match="training has not started"):
        Capture(None, {}).result()


@pytest.mark.parametrize(("module", "extra"), [("lightning", "lightning"),
                                               ("huggingface", "hf")])  # fmt: skip
def test_a_missing_framework_names_its_extra_and_gdscope_imports_without_it(module, extra):
    framework = {"lightning": "lightning", "huggingface": "transformers"}[module]
    code = (
        f"import sys; sys.modules[{framework!r}] = None\n"
        "import gdscope, gdscope.integrations, gdscope.integrations.capture\n"
        f"try:\n    import gdscope.integrations.{module}\n"
        "except gdscope.GdscopeError as error:\n    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == (
        f"{framework} is not installed: pip install 'gdscope[{extra}]' "
        f"(in a clone of gdscope: pip install -c constraints.txt '.[{extra}]')"
    )


def test_landscape_snapshots_fall_back_to_a_random_plane_until_the_path_has_one(tmp_path):
    # Every 2 steps: at step 2 the path (every=2) is 2 snapshots, no PCA plane: random
    # directions; at step 4, 3 snapshots: their PCA plane. Both drawn with the path and the
    # honesty chart. A PNG is never overwritten.
    from torch import nn

    from gdscope.examples import mlp
    from gdscope.integrations.capture import landscape_file, save_landscape

    inputs, targets = mlp.make_dataset(60, seed=3).tensors
    capture = Capture(None, {"every": 2, "landscape_every": 2, "landscape_points": 5,
                             "landscape_data": [(inputs, targets)],
                             "landscape_loss": nn.CrossEntropyLoss()})  # fmt: skip
    model = mlp.make_model(seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    capture.start(model, optimizer)
    titles = []
    for _ in range(4):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        capture.step()
        if (snapshot := capture.landscape()) is not None:
            step, figure = snapshot
            titles.append((step, figure.axes[0].get_title()))
    assert titles == [(2, "loss at step 2 (random plane)"),
                      (4, "loss at step 4 (PCA plane of 3 snapshots)")]  # fmt: skip
    assert save_landscape(figure, tmp_path, 4) == landscape_file(tmp_path, 4)
    before = landscape_file(tmp_path, 4).read_bytes()
    with pytest.warns(UserWarning, match="landscape snapshot not saved"):
        assert save_landscape(figure, tmp_path, 4) is None
    assert landscape_file(tmp_path, 4).read_bytes() == before


@pytest.mark.parametrize(("options", "match"), [
    ({"landscape_every": 0}, "landscape_every must be a positive integer"),
    ({"landscape_every": 2}, "landscape_every needs landscape_data and landscape_loss"),
    ({"landscape_every": 2, "landscape_data": [()]}, "needs landscape_loss \\("),
    ({"landscape_every": 2, "sharpness_data": [()], "sharpness_loss": len,
      "landscape_points": 1}, "landscape_points: points per axis"),
])  # fmt: skip
def test_landscape_options_are_checked_when_the_callback_is_made(options, match):
    with pytest.raises(GdscopeError, match=match):
        Capture(None, options)
    assert Capture(None, {"landscape_every": 2, "sharpness_data": [()],
                          "sharpness_loss": len}).landscapes is not None  # fmt: skip
