"""One meaning of "diverged" (problem.divergence) in every engine, the phase metric, the CLI and
the API: a run that leaves its map by a factor of a million is flagged at that step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from gdscope.cli.main import main
from gdscope.engines import native
from gdscope.engines.batched import run_batched
from gdscope.engines.reference import train
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.divergence import Divergence
from gdscope.problem.losses import LOSS_NAMES, LossSpec
from gdscope.problem.testfunctions import FUNCTIONS, TestFunction
from gdscope.server.app import create_app
from gdscope.studies.phase import phase_diagram
from gdscope.studies.sweep import Axis

NATIVE = pytest.param(
    "native",
    marks=pytest.mark.skipif(native.load() is None, reason="no C compiler: no native engine"),
)
ENGINES = ["torch", NATIVE]


def engines_available() -> list[str]:
    return ["torch"] + (["native"] if native.load() is not None else [])


def at(value: int) -> int | None:
    return None if value < 0 else value


# SGD steps large enough that most runs on MSE/Huber leave the map within the epochs.
sgd = st.fixed_dictionaries(
    {
        "lr": st.floats(0.3, 4.0),
        "momentum": st.sampled_from([0.0, 0.0, 0.9]) | st.floats(0.0, 0.95),
        "dampening": st.sampled_from([0.0, 0.5]),
        "weight_decay": st.sampled_from([0.0, 0.0, 1.0]),
        "nesterov": st.booleans(),
        "maximize": st.sampled_from([False, False, False, True]),
    }
)
losses = st.builds(
    LossSpec, st.sampled_from(LOSS_NAMES), delta=st.floats(0.1, 3.0), beta=st.floats(0.0, 3.0)
)
points = st.tuples(st.floats(-5, 8), st.floats(-5, 8))


@st.composite
def diverging_batches(draw):
    size = draw(st.integers(1, 20))  # more than one 16-lane block of the native kernel
    configs = [draw(sgd) for _ in range(size)]
    for c in configs:
        if c["nesterov"]:
            c["momentum"], c["dampening"] = max(c["momentum"], 0.1), 0.0
    return configs, [draw(losses) for _ in range(size)], [draw(points) for _ in range(size)]


@settings(max_examples=30, deadline=None)
@given(batch=diverging_batches())
def test_float64_diverged_at_equals_torch_optim_in_every_engine(article_data, batch):
    configs, loss_list, starts = batch
    hyper = {key: [c[key] for c in configs] for key in configs[0]}
    epochs = 60
    common = {"loss": loss_list, "start": starts, "epochs": epochs, "dtype": torch.float64}
    results = {
        e: run_batched(article_data, "sgd", hyper, engine=e, **common) for e in engines_available()
    }
    for k, (config, loss, start) in enumerate(zip(configs, loss_list, starts, strict=True)):
        ref = train(article_data, loss=loss, optimizer=OptimizerSpec.of("sgd", **config),
                    epochs=epochs, start=start, dtype=torch.float64)  # fmt: skip
        for engine, result in results.items():
            assert at(int(result.diverged_at[k])) == ref.diverged_at, (engine, k)
        if ref.diverged:  # kept up to the last point before: within the bound, finite
            kept = ref.path[: ref.diverged_at]
            assert np.isfinite(kept).all() and np.abs(kept).max() <= 8e6


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(sorted(FUNCTIONS)),
    scale=st.floats(0.5, 40.0),
    momentum=st.sampled_from([0.0, 0.9]),
    where=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_float64_diverged_at_equals_torch_optim_on_test_functions(name, scale, momentum, where):
    f = TestFunction(name)
    (ylo, yhi), (xlo, xhi) = f.domain
    start = (ylo + where[0] * (yhi - ylo), xlo + where[1] * (xhi - xlo))
    options = {"lr": f.customary_lr * scale, "momentum": momentum}
    ref = train(None, loss=f, optimizer=OptimizerSpec.of("sgd", **options), epochs=80,
                start=start, dtype=torch.float64)  # fmt: skip
    ours = run_batched(None, "sgd", options, loss=f, start=start, epochs=80, dtype=torch.float64)
    assert at(int(ours.diverged_at[0])) == ref.diverged_at


EXPLORER = {"lr": 1.2}
"""The explorer's case: MSE at lr 1.2 reached a loss of 3.3e34 with diverged_at null."""


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("engine", ENGINES)
def test_mse_at_lr_1_2_is_reported_diverged(article_data, engine, dtype):
    ref = train(article_data, optimizer=OptimizerSpec.of("sgd", **EXPLORER), dtype=dtype)
    assert ref.diverged_at is not None and ref.diverged_at < 100
    assert np.nanmax(ref.losses) < 1e20  # the path stops long before 3.3e34
    ours = run_batched(article_data, "sgd", EXPLORER, dtype=dtype, engine=engine)
    assert ours.timings["engine"] == engine
    assert at(int(ours.diverged_at[0])) == ref.diverged_at
    np.testing.assert_allclose(ours.trajectory(0).path, ref.path, rtol=1e-4, equal_nan=True)


def test_the_compiled_step_flags_the_same_step(article_data):
    ref = train(article_data, optimizer=OptimizerSpec.of("sgd", **EXPLORER))
    ours = run_batched(article_data, "sgd", {"lr": [1.2, 0.1]}, compile=True)  # no skip: CI has cc
    assert ours.diverged_at.tolist() == [ref.diverged_at, -1]


def test_the_api_reports_the_explorer_case(article_data):
    client = TestClient(create_app(), base_url="http://127.0.0.1:8000")  # a served host
    body = {"optimizer": {"name": "sgd", "hyper": EXPLORER}, "epochs": 100}
    run = client.post("/api/trajectories", json=body).json()["runs"][0]
    ref = train(article_data, optimizer=OptimizerSpec.of("sgd", **EXPLORER))
    assert run["diverged_at"] is not None and run["diverged_at"] == ref.diverged_at
    assert run["weights"][ref.diverged_at] is None and run["losses"][ref.diverged_at] is None
    assert max(v for v in run["losses"] if v is not None) < 1e20


def test_the_phase_metric_agrees_with_diverged_at(article_data):
    run = phase_diagram(article_data, x=Axis.parse("lr=0.1,0.5,1.2,2,3"),
                        y=Axis.parse("momentum=0,0.5,0.9"), epochs=100)  # fmt: skip
    reported = run.grid("diverged_at") >= 0
    marked = run.grid("diverged") > 0.5
    assert reported[0, 2]  # lr 1.2 without momentum: the explorer's case
    assert (marked[reported]).all()  # every run reported diverged is marked diverged
    assert not marked[:, 0].any() and reported[:, 3:].all()


SADDLE = TestFunction("saddle")


@pytest.mark.parametrize("engine", ["reference", "batched"])
def test_saddle_from_its_start_reports_divergence(engine):
    # Before, SGD ran on to y = 1.3e11 here and the path ended there without a word.
    lr = SADDLE.customary_lr
    if engine == "reference":
        run = train(None, loss=SADDLE, optimizer=OptimizerSpec.of("sgd", lr=lr), epochs=300)
    else:
        run = run_batched(None, "sgd", {"lr": lr}, loss=SADDLE, epochs=300).trajectory(0)
    bound = Divergence.of(SADDLE).bound
    assert run.diverged_at is not None and 100 < run.diverged_at < 300
    assert bound == 3e6 and max(map(abs, run.final)) <= bound
    assert np.isnan(run.path[run.diverged_at :]).all()


def test_the_cli_says_where_and_why(capsys):
    assert main(["train", "--function", "saddle", "--epochs", "300"]) == 0
    out = capsys.readouterr().out
    assert "diverged at step 188: |y| = 3.03e+06 is beyond the escape bound 3e+06" in out
