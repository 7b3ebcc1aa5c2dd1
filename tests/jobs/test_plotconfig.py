"""PlotConfig: dict and TOML round trips, and the errors a config file gets."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from gdscope.errors import GdscopeError
from gdscope.jobs.plotconfig import PlotConfig, load_toml
from gdscope.optim.sgdconfig import SGDConfig
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.losses import LossSpec
from gdscope.problem.testfunctions import TestFunction

from ..reference import run


def test_toml_config_round_trip_and_errors(tmp_path, capsys):
    config = PlotConfig(
        losses=(LossSpec("huber", delta=0.5), TestFunction.of("quadratic", condition=20.0)),
        optimizer=OptimizerSpec.of("adam", lr=0.05, betas=(0.8, 0.99)),
        epochs=30, log=True, view="contour", overlays=("steps",),
    )  # fmt: skip
    assert PlotConfig.from_dict(config.to_dict()) == config
    text = """
epochs = 30
view = "contour"
log = true
overlays = ["steps", "momentum"]
[[losses]]
name = "mse"
[[losses]]
function = "quadratic"
condition = 20
[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9
"""
    path = tmp_path / "run.toml"
    path.write_text(text)
    loaded = load_toml(path)
    assert loaded.losses == (LossSpec("mse"), TestFunction.of("quadratic", condition=20.0))
    assert loaded.optimizer.kwargs()["momentum"] == 0.9 and loaded.view == "contour"
    out = tmp_path / "t.png"
    assert run(capsys, "plot", "--config", path, "--out", out)[0] == 0
    assert json.loads(Image.open(out).text["Description"])["config"] == loaded.to_dict()
    for bad, message in (
        ("epochz = 3", "unknown key(s) epochz"),
        ("epochs = 'ten'", "epochs must be an integer"),
        ("log = 1", "log must be true or false"),
        ("[optimizer]\nname = 'sgd'\nlr = 0.1\nmomentumm = 0.9", "optimizer"),
        ("[[losses]]\nname = 'mse'\nbeta = 'x'", "losses[0].beta must be a number"),
        ("[grid]\nw_size = 1", "grid size must be in"),
        ("epochs = [", "is not valid TOML"),
    ):
        path.write_text(bad)
        code, _, err = run(capsys, "plot", "--config", path, "--out", tmp_path / "bad.png")
        assert code == 2 and message in err and err.count("\n") == 1, (bad, err)
    path.write_text("epochs = 3")
    code, _, err = run(capsys, "plot", "--config", path, "--lr", "0.3", "--out", out, "--force")
    assert code == 2 and "drop --lr" in err


WRONG = [("optimizer.lr", "'fast'", "a number"), ("optimizer.lr", "[0.1]", "a number"),
         ("optimizer.amsgrad", "1", "true or false"), ("optimizer.betas", "0.9", "a list"),
         ("optimizer.betas", "['a', 0.99]", "a number"), ("scheduler.gamma", "'x'", "a number"),
         ("epochs", "'ten'", "an integer"), ("epochs", "2.5", "an integer"),
         ("data.n", "[50]", "an integer"), ("data.noise", "'low'", "a number"),
         ("losses[0].delta", "[1]", "a number"),
         ("grid.w_size", "'big'", "an integer")]  # fmt: skip


TABLES = {"optimizer": "[optimizer]\nname = 'adam'", "data": "[data]", "grid": "[grid]",
          "scheduler": "[scheduler]\nname = 'steplr'",
          "losses[0]": "[[losses]]\nname = 'huber'"}  # fmt: skip


@pytest.mark.parametrize(("path", "value", "wanted"), WRONG)
def test_a_wrong_type_names_the_key_path(tmp_path, path, value, wanted):
    table, _, key = path.rpartition(".")
    file = tmp_path / "run.toml"
    file.write_text(f"{TABLES[table]}\n{key} = {value}\n" if table else f"{path} = {value}\n")
    with pytest.raises(GdscopeError) as caught:
        load_toml(file)
    assert str(caught.value).startswith(f"{file}: {path} must be {wanted}, got ")


def test_right_types_load(tmp_path):
    file = tmp_path / "run.toml"
    file.write_text("[optimizer]\nname = 'adam'\nlr = 1\nbetas = [0.8, 0.99]\namsgrad = true\n"
                    "[[losses]]\nfunction = 'booth'\n")  # fmt: skip
    config = load_toml(file)
    assert config.optimizer.kwargs() == {"lr": 1.0, "betas": (0.8, 0.99), "amsgrad": True}
    assert [x.title for x in config.losses] == ["Booth"]


@pytest.mark.parametrize(
    "losses",
    [
        (LossSpec("mse"),),
        (TestFunction.of("rosenbrock"),),
        (LossSpec("l1"), TestFunction.of("booth")),
    ],
)
@pytest.mark.parametrize("lr", [0.1, 1e-3, 0.05])
def test_the_command_re_makes_the_same_configuration(losses, lr):
    """The command a record or the page shows parses back to the same PlotConfig: an lr equal
    to SGD's own default is still written when the objectives' customary lr differs."""
    from gdscope.cli.main import build_parser, plot_config

    config = PlotConfig(losses=losses, optimizer=SGDConfig(lr=lr, momentum=0.9).spec())
    again = plot_config(build_parser().parse_args(["plot", *config.cli_args(), "--out", "x.png"]))
    assert again.optimizer == config.optimizer and again.losses == config.losses


NOT_FINITE = ["nan", "inf", "-inf"]


@pytest.mark.parametrize("value", NOT_FINITE)
@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad"])
def test_a_non_finite_hyperparameter_is_refused_however_the_config_is_built(tmp_path, name, value):
    # (torch.optim.SGD takes lr=nan and inf without a word: every step is then NaN)
    torch_optim = {"sgd": "SGD", "adam": "Adam", "rmsprop": "RMSprop", "adagrad": "Adagrad"}
    said = f"{torch_optim[name]}: lr must be finite"
    with pytest.raises(GdscopeError, match=said):  # the API
        OptimizerSpec.of(name, lr=float(value))
    raw = {**PlotConfig().to_dict(), "optimizer": {"name": name, "lr": float(value)}}
    with pytest.raises(GdscopeError, match=said):  # a record's config
        PlotConfig.from_dict(json.loads(json.dumps(raw)))  # (json writes NaN, Infinity)
    toml = tmp_path / "c.toml"
    toml.write_text(f'[optimizer]\nname = "{name}"\nlr = {value}\n')
    with pytest.raises(GdscopeError, match=f"c.toml: optimizer: {said}"):  # a TOML file
        load_toml(toml)
    if name == "sgd":
        with pytest.raises(GdscopeError, match="lr must be finite"):
            SGDConfig(lr=float(value))


def test_a_non_finite_value_inside_a_tuple_is_refused():
    with pytest.raises(GdscopeError, match="Adam: betas must be finite"):
        OptimizerSpec.of("adam", betas=(float("nan"), 0.999))
