"""The sharpness chart: each run's threshold drawn where its learning rate puts it, the rule
said once, the preconditioned measure named."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from gdscope.nets.sharpness import SharpnessTrace
from gdscope.render.edge import plot_sharpness, plot_training_loss


def _trace(lr: np.ndarray, measure="hessian", rule="2/η: gradient descent") -> SharpnessTrace:
    steps = np.arange(len(lr)) * 10
    values = np.linspace(1, 2 / lr[-1], len(lr))[:, None]
    return SharpnessTrace(steps, values, lr, 2 / lr, measure, rule, "SGD")


def test_thresholds_follow_the_learning_rate_and_the_rule_is_said_once():
    lr = np.array([0.4, 0.4, 0.2, 0.2])
    ax = Figure().add_subplot()
    plot_sharpness([("a", _trace(lr)), ("b", _trace(np.full(4, 0.5)))], ax=ax)
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    np.testing.assert_allclose(dashed[0].get_ydata(), [5, 5, 10, 10])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["a", "2/η = 10", "b", "2/η = 4"]
    assert ax.texts[0].get_text() == "dashed: 2/η: gradient descent (the stability border)"
    assert ".py" not in ax.texts[0].get_text()  # a reader's figure cites no source file
    assert ax.get_ylabel() == "sharpness λ₁(H), eval mode"


def test_adam_is_measured_preconditioned_and_unknown_thresholds_are_not_drawn():
    ax = Figure().add_subplot()
    adam = _trace(np.full(3, 0.01), "preconditioned", "38/η: Adam's preconditioned sharpness")
    plot_sharpness([("adam", adam)], ax=ax)
    assert ax.get_ylabel() == "preconditioned sharpness λ₁(P⁻¹H), eval mode"
    none = SharpnessTrace(np.arange(3), np.ones((3, 1)), np.full(3, 0.1), np.full(3, np.nan),
                          "hessian", "no stability threshold is known for RMSprop")  # fmt: skip
    ax = Figure().add_subplot()
    plot_sharpness([("rms", none)], ax=ax)
    assert not [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert ax.texts[0].get_text() == "no stability threshold is known for RMSprop"


def test_training_loss_is_drawn_per_step_on_a_log_scale():
    ax = Figure().add_subplot()
    plot_training_loss([("a", np.array([1.0, 0.5, 0.7]))], ax=ax)
    assert ax.get_yscale() == "log"
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [1, 2, 3])
    assert ax.get_title() == "training loss at each step (on that step's batch)"


def test_draw_sharpness_does_not_call_a_mini_batch_loss_full_batch():
    from gdscope.jobs.hessian import draw_sharpness

    lr = np.full(3, 0.1)
    fig = draw_sharpness([("a", _trace(lr))], losses=[np.array([1.0, 0.5, 0.7])])
    titles = [ax.get_title() for ax in fig.axes]
    assert not any("full batch" in title for title in titles)
    assert "training loss at each step (on that step's batch)" in titles


def test_the_mode_the_sharpness_was_measured_in_is_named():
    lr = np.full(3, 0.1)
    train = SharpnessTrace(**{**_trace(lr).__dict__, "train": True})
    ax = Figure().add_subplot()
    plot_sharpness([("train", train)], ax=ax)
    assert ax.get_ylabel() == "sharpness λ₁(H), train mode"
    ax = Figure().add_subplot()
    plot_sharpness([("train", train), ("eval", _trace(lr))], ax=ax)
    assert ax.get_ylabel() == "sharpness λ₁(H), eval mode and train mode"
