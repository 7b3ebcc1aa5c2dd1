"""TOML configs: a value of the wrong type is refused with its key's path."""

from __future__ import annotations

import pytest

from gdscope.errors import GdscopeError
from gdscope.jobs.plotconfig import load_toml


@pytest.mark.parametrize(
    ("text", "path", "wanted"),
    [
        ("[optimizer]\nname = 'sgd'\nlr = 'fast'", "optimizer.lr", "a number"),
        ("[optimizer]\nname = 'sgd'\nlr = [0.1]", "optimizer.lr", "a number"),
        ("[optimizer]\nname = 'sgd'\nnesterov = 1\nmomentum = 0.9", "optimizer.nesterov",
         "true or false"),
        ("[optimizer]\nname = 'adam'\nbetas = 0.9", "optimizer.betas", "a list"),
        ("[optimizer]\nname = 'adam'\nbetas = ['a', 0.99]", "optimizer.betas", "a number"),
        ("[scheduler]\nname = 'exponentiallr'\ngamma = 'x'", "scheduler.gamma", "a number"),
        ("epochs = 'ten'", "epochs", "an integer"),
        ("epochs = 2.5", "epochs", "an integer"),
        ("[data]\nn = [50]", "data.n", "an integer"),
        ("[data]\nnoise = 'low'", "data.noise", "a number"),
        ("[[losses]]\nname = 'huber'\ndelta = [1]", "losses[0].delta", "a number"),
        ("[[losses]]\nfunction = 'quadratic'\ncondition = 'x'", "losses[0].condition",
         "a number"),
        ("[grid]\nw_size = 'big'", "grid.w_size", "an integer"),
    ],
)  # fmt: skip
def test_a_wrong_type_names_the_key_path(tmp_path, text, path, wanted):
    file = tmp_path / "run.toml"
    file.write_text(text)
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
