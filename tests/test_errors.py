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
