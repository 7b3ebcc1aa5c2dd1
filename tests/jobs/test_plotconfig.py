"""TOML configs: a value of the wrong type is refused with its key's path."""

from __future__ import annotations

import pytest

from gdscope.errors import GdscopeError
from gdscope.jobs.plotconfig import load_toml

# Each case: a key path, a value of the wrong type for it (TOML), and what the key must be.
WRONG = [("optimizer.lr", "'fast'", "a number"), ("optimizer.lr", "[0.1]", "a number"),
         ("optimizer.amsgrad", "1", "true or false"), ("optimizer.betas", "0.9", "a list"),
         ("optimizer.betas", "['a', 0.99]", "a number"), ("scheduler.gamma", "'x'", "a number"),
         ("epochs", "'ten'", "an integer"), ("epochs", "2.5", "an integer"),
         ("data.n", "[50]", "an integer"), ("data.noise", "'low'", "a number"),
         ("losses[0].delta", "[1]", "a number"),
         ("grid.w_size", "'big'", "an integer")]  # fmt: skip
# What each table needs besides the wrong key.
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
