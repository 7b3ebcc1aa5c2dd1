"""model_landscape's options: grouped or as keywords, checked before any work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gdscope.errors import GdscopeError
from gdscope.examples import mlp
from gdscope.nets.plane import EvaluationOptions
from gdscope.nets.survey import PlaneOptions, model_landscape, split_options

from .test_plane import WRAPS, Wrapped


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"directions": "eigen"}, "directions must be one of random, pca, line, hessian"),
        ({"directions": "pca", "states": True}, "PCA takes no states$"),
        ({"norm": "unit"}, "norm must be one of filter, layer, none"),
        ({"ignore": "drop"}, "ignore must be one of biasbn, keep"),
        ({"x": (1.0, -1.0, 5)}, "LO < HI"),
        ({"y": (-1.0, 1.0, 502)}, "2..501 points"),
        ({"line": True, "y": (-1.0, 1.0, 3)}, "a line has one axis \\(x\\): drop y"),
        ({"directions": "line", "y": (-1.0, 1.0, 3)}, "a line has one axis \\(x\\): drop y"),
        ({"points": 1}, "points per axis"),
        ({"points": 3.5}, "points per axis must be a whole number"),
        ({"x": (-1, 1, 3.5)}, r"points \(whole\), got \(-1, 1, 3.5\)"),
        ({"x": (-1.0, float("inf"), 3)}, "finite LO < HI"),
        ({"y": (-1.0, 1.0)}, r"a grid axis is \(LO, HI, COUNT\)"),
        ({"x": 5}, r"a grid axis is \(LO, HI, COUNT\)"),
    ],
)
def test_plane_options_refuse_what_cannot_be_drawn(options, message):
    with pytest.raises(GdscopeError, match=message):
        PlaneOptions(**options)


def test_keywords_override_the_options_and_unknown_ones_are_refused():
    plane, evaluation = split_options(
        {"points": 9, "strategy": "loop"}, PlaneOptions(seed=3), EvaluationOptions(chunk=2),
        path=False, to=False,
    )  # fmt: skip
    assert plane == PlaneOptions(seed=3, points=9)
    assert evaluation == EvaluationOptions(chunk=2, strategy="loop")
    with pytest.raises(TypeError, match="colour"):
        split_options({"colour": "red"}, None, None, path=False, to=False)


def test_a_missing_source_is_said_first():
    # a line without its end, and a y axis it cannot have: the end is what to fix first
    with pytest.raises(GdscopeError, match="a line needs the model at its end"):
        split_options({"directions": "line", "y": (-1.0, 1.0, 3)}, None, None, path=False,
                      to=False)  # fmt: skip
    with pytest.raises(GdscopeError, match="PCA directions need a recorded run: give path"):
        split_options({}, PlaneOptions(directions="pca"), None, path=False, to=False)


def test_grouped_options_and_keywords_give_the_same_landscape():
    model = mlp.make_model(seed=1)
    data = mlp.make_loader()
    flat = model_landscape(model, data, nn.CrossEntropyLoss(), points=3, seed=4, line=True,
                           strategy="loop", chunk=2)  # fmt: skip
    grouped = model_landscape(
        model, data, nn.CrossEntropyLoss(), plane=PlaneOptions(points=3, seed=4, line=True),
        evaluation=EvaluationOptions(strategy="loop", chunk=2),
    )  # fmt: skip
    np.testing.assert_array_equal(grouped.surface.loss, flat.surface.loss)
    assert flat.surface.is_line and flat.surface.loss.shape == (1, 3)
    assert flat.surface.meta["chunk"] == 2
    other_seed = model_landscape(model, data, nn.CrossEntropyLoss(), points=3, line=True,
                                 strategy="loop")  # fmt: skip
    assert not np.array_equal(other_seed.surface.loss, flat.surface.loss)


@pytest.mark.parametrize("kind", WRAPS)
@pytest.mark.parametrize("strategy", ["auto", "loop", "vmap"])
def test_a_model_whose_output_the_loss_unpacks_has_a_landscape(kind, strategy):
    wrap, unpack = WRAPS[kind]
    x = torch.randn(16, 3)
    data = (x, (x[:, 0] > 0).long())
    ce = nn.CrossEntropyLoss()
    plain = model_landscape(Wrapped(lambda t: t), data, ce, points=3, strategy="loop")
    result = model_landscape(Wrapped(wrap), data, lambda out, y: ce(unpack(out), y), points=3,
                             strategy=strategy)  # fmt: skip
    np.testing.assert_allclose(result.surface.loss, plain.surface.loss, rtol=1e-6)
    assert result.surface.accuracy is None and plain.surface.accuracy is not None


def test_the_model_is_left_in_its_mode_with_its_flags_and_weights_even_on_an_error():
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    model.train()
    model[1].eval()  # one module in another mode than the rest
    model[0].bias.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 3)
    data = (x, (x[:, 0] > 0).long())

    def failing(out, y):
        if not torch.equal(model[2].weight, before["2.weight"]):  # a grid point is loaded
            raise RuntimeError("the loss failed")
        return nn.functional.cross_entropy(out, y)

    for loss in (nn.CrossEntropyLoss(), failing):
        for strategy in ("loop", "vmap"):
            try:
                model_landscape(model, data, loss, points=3, strategy=strategy)
            except RuntimeError:
                assert loss is failing and strategy == "loop"
            assert [m.training for m in model.modules()] == [True, True, False, True]
            assert [p.requires_grad for p in model.parameters()] == [True, False, True, True]
            for name, value in model.state_dict().items():
                assert torch.equal(value, before[name])


def test_a_pca_map_is_centred_on_the_model_not_on_the_last_snapshot():
    from gdscope.nets.directions import pca_plane
    from gdscope.nets.fit import fit
    from gdscope.nets.recorder import ParamLayout

    torch.manual_seed(0)
    x = torch.randn(32, 3)
    data = (x, (x[:, 0] > 0).long())
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    path = fit(model, [data], nn.CrossEntropyLoss(), optimizer, epochs=9, every=4).path
    assert list(path.steps) == [0, 4, 8]  # the model is at step 9, past the last snapshot
    result = model_landscape(model, data, nn.CrossEntropyLoss(), path=path, directions="pca",
                             points=5, strategy="loop")  # fmt: skip
    here = ParamLayout.of(model).vector(model)
    assert torch.equal(result.surface.centre, here)
    last = pca_plane(path)
    assert torch.equal(result.surface.dx, last.dx) and torch.equal(result.surface.dy, last.dy)
    projected = result.projected
    assert projected is not None and result.honesty is not None
    assert abs(projected.xs[-1]) + abs(projected.ys[-1]) > 0.01  # the path ends off centre
    for xs in (result.surface.xs, result.surface.ys):  # the map frames the model (at 0)
        assert xs[0] < 0 < xs[-1]
    # the honesty check: each snapshot's true loss, and the surface where it is drawn
    for i in range(len(path)):
        model_at = nn.Linear(3, 2)
        model_at.load_state_dict(path.state(i))
        true = float(nn.CrossEntropyLoss()(model_at(x), data[1]))
        assert result.honesty.true_loss[i] == pytest.approx(true, rel=1e-6)
        on_plane = result.surface.point(projected.xs[i], projected.ys[i])
        with torch.no_grad():
            for name, value in ParamLayout.of(model_at).unflatten(on_plane).items():
                dict(model_at.named_parameters())[name].copy_(value)
        plane = float(nn.CrossEntropyLoss()(model_at(x), data[1]))
        assert result.honesty.plane_loss[i] == pytest.approx(plane, rel=1e-6)


def test_a_line_to_another_architecture_names_the_models_end_not_a_path():
    x = torch.randn(8, 3)
    with pytest.raises(GdscopeError, match=r"do not match the model's at the line's end \(--to"):
        model_landscape(nn.Linear(3, 2), (x, x[:, :2]), nn.MSELoss(), directions="line",
                        to=nn.Linear(3, 3))  # fmt: skip


def test_a_diverged_recording_is_refused_before_its_pca_naming_the_step():
    from gdscope.nets.recorder import Recorder

    model = nn.Linear(3, 2)
    recorder = Recorder(model, every=2)
    for factor in (1.5, 1.5, 1.5, float("inf"), 1.0, 1.0):  # inf from the 4th step on
        with torch.no_grad():
            model.weight.mul_(factor)
        recorder.step()
    x = torch.randn(8, 3)
    with pytest.raises(GdscopeError, match=r"not finite from snapshot 2 \(step 4\)"):
        model_landscape(model, (x, x[:, :2]), nn.MSELoss(), path=recorder.result(),
                        directions="pca", points=3)  # fmt: skip
