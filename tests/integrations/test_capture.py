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
