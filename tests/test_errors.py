from __future__ import annotations

import pickle

import pytest

from gdscope.errors import GdscopeError, one_of


def test_one_of_returns_the_value_or_says_the_choices_and_the_setting():
    assert one_of("view", "2d", ("2d", "3d")) == "2d"
    with pytest.raises(GdscopeError, match=r"^view must be one of 2d, 3d, got 'x'$") as caught:
        one_of("view", "x", iter(("2d", "3d")))  # any iterable, read once
    assert caught.value.settings == ("view",)


def test_settings_survive_pickling():
    """A worker process hands its errors back pickled: the names the CLI maps go with them."""
    error = pickle.loads(pickle.dumps(GdscopeError("chunk must be >= 1", settings=["chunk"])))
    assert str(error) == "chunk must be >= 1" and error.settings == ("chunk",)
    assert GdscopeError("plain").settings == ()


def test_unknown_names_the_choices_and_the_name_as_given():
    from gdscope.errors import unknown

    error = unknown("loss", "MSE-ish", ("mse", "l1"))
    assert isinstance(error, GdscopeError)
    assert str(error) == "unknown loss 'MSE-ish'; choose one of mse, l1"


def test_must_be_one_of_is_worded_in_one_place():
    """``one_of`` words the error; a new hand-written copy of it fails here. Left: a loss that
    may also be ``module:function``."""
    from pathlib import Path

    import gdscope

    src = Path(gdscope.__file__).parent
    left = {"errors.py", "jobs/landscape.py"}
    found = {
        path.relative_to(src).as_posix()
        for path in src.rglob("*.py")
        if "must be one of" in path.read_text(encoding="utf-8")
    }
    assert found <= left, sorted(found - left)
