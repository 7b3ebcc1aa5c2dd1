from __future__ import annotations

import csv

import numpy as np
import pytest

from gdscope.engines.reference import train
from gdscope.errors import GdscopeError
from gdscope.problem.data import Dataset, DataSpec, load_csv, make_data

from ..reference import run


def article_points(seed=20240215, n=50):
    """The article's own code, global seeding included."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        x = np.array(np.random.randn(n), dtype=np.float32)
        y = np.array(0.75 * x**2 + 1.0 * x + 2.0 + 0.3 * np.random.randn(n), dtype=np.float32)
    finally:
        np.random.set_state(state)
    return x, y


def test_article_points_bit_for_bit():
    x, y = article_points()
    data = make_data()
    assert data.x.dtype == np.float32 and data.y.dtype == np.float32
    np.testing.assert_array_equal(data.x, x)
    np.testing.assert_array_equal(data.y, y)
    assert len(data) == 50


def test_does_not_touch_global_numpy_state():
    before = np.random.get_state()[1].copy()
    make_data()
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_parameters_change_the_points():
    x, _ = article_points(seed=7, n=20)
    data = make_data(DataSpec(seed=7, n=20, quadratic=0.0, linear=2.0, constant=-1.0, noise=0.0))
    np.testing.assert_array_equal(data.x, x)
    np.testing.assert_allclose(data.y, 2.0 * x - 1.0, rtol=1e-6)


def test_points_are_read_only():
    data = make_data()
    with pytest.raises(ValueError):
        data.x[0] = 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": 0},
        {"n": 2.5},
        {"noise": -1.0},
        {"quadratic": float("nan")},
        {"seed": -1},
        {"linear": float("inf")},
        {"seed": 2**32},
    ],
)
def test_bad_specs_are_rejected(kwargs):
    with pytest.raises(GdscopeError):
        DataSpec(**kwargs)


def test_dataset_validation():
    with pytest.raises(GdscopeError, match="equal length"):
        Dataset(np.zeros(3), np.zeros(4))
    with pytest.raises(GdscopeError, match="non-finite"):
        Dataset(np.array([0.0, np.nan]), np.zeros(2))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x,z\n1,2\n3,4\n", "missing column(s) y (found: x, z)"),
        ("a,b\n1,2\n", "missing column(s) x, y"),
        ("", "missing column(s) x, y (found: no header)"),
        ("x,y\n1,2\n3,abc\n", "line 3: column y is not a number: 'abc'"),
        ("x,y\n1,2\nnan,4\n", "line 3: column x is not finite: 'nan'"),
        ("x,y\n1,2\n", "need at least 2 rows of points, found 1"),
    ],
)
def test_csv_errors_are_one_line_exit_2(tmp_path, capsys, text, message):
    data = tmp_path / "points.csv"
    data.write_text(text)
    code, _, err = run(capsys, "plot", "--data", data, "--out", tmp_path / "p.png")
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "p.png").exists()


def test_csv_data_trains_like_the_same_points(tmp_path, article_data):
    path = tmp_path / "points.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["y", "x", "note"])
        for x, y in zip(article_data.x, article_data.y, strict=True):
            writer.writerow([repr(float(y)), repr(float(x)), "ok"])
    loaded = load_csv(path)
    np.testing.assert_array_equal(loaded.x, article_data.x)
    a = train(loaded, epochs=20)
    b = train(article_data, epochs=20)
    np.testing.assert_array_equal(a.path, b.path)


def test_csv_data_cannot_mix_with_generator_options(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("x,y\n1,2\n2,3\n")
    code, _, err = run(capsys, "train", "--data", path, "--seed", "3")
    assert code == 2 and "--data reads the points" in err
