"""The API's schema and request models are the library's tables, not copies of them."""

from __future__ import annotations

from dataclasses import asdict

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from gdscope.jobs.plotconfig import VIEWS, PlotConfig
from gdscope.optim.specs import OPTIMIZERS, OptimizerSpec
from gdscope.optim.table import OPTIMIZER_TABLE, Hyperparameter, OptimizerEntry
from gdscope.problem.data import DataSpec
from gdscope.problem.losses import ARTICLE_LOSSES, LOSS_NAMES, LossSpec
from gdscope.problem.maps import Grid
from gdscope.problem.objective import default_start
from gdscope.problem.testfunctions import TestFunction
from gdscope.server import models
from gdscope.server.app import OUT, create_app
from gdscope.studies.phase import NEURON_METRICS

BOUNDED = [
    (name, hyper)
    for name, entry in OPTIMIZER_TABLE.items()
    for hyper in entry.hyperparameters
    if hyper.low is not None
]


@pytest.fixture(scope="module")
def client():
    app = create_app()
    yield TestClient(app, base_url="http://127.0.0.1:8000")  # a served host
    app.state.pool.close()


@pytest.fixture(scope="module")
def schema(client):
    return client.get("/api/schema").json()


@pytest.fixture(scope="module")
def openapi(client):
    return client.get("/openapi.json").json()


def test_schema_lists_exactly_the_table(schema):
    assert list(schema["optimizers"]) == list(OPTIMIZER_TABLE)
    for name, listed in schema["optimizers"].items():
        entry = OPTIMIZER_TABLE[name]
        assert listed["title"] == OPTIMIZERS[name].__name__
        defaults = entry.defaults()
        assert listed["hyperparameters"] == [
            {**asdict(h), "default": defaults[h.name], "span": list(h.span), "kind": h.kind}
            for h in entry.hyperparameters
        ]
        assert listed["defaults"] == defaults


def test_each_hyperparameter_has_one_default(schema, openapi):
    """Issue 19: SGD's lr was 0.1 in ``defaults`` and torch's 0.001 in its hyperparameter."""
    for name, listed in schema["optimizers"].items():
        request = openapi["components"]["schemas"][f"{OPTIMIZER_TABLE[name].title}Hyper"]
        for hyper in listed["hyperparameters"]:
            assert hyper["default"] == listed["defaults"][hyper["name"]]
            assert hyper["default"] == request["properties"][hyper["name"]]["default"]
    assert (
        schema["optimizers"]["sgd"]["defaults"]["lr"] == dict(PlotConfig().optimizer.options)["lr"]
    )


def test_schema_names_and_defaults_are_the_library_s(schema):
    assert [loss["name"] for loss in schema["losses"]] == list(LOSS_NAMES)
    assert [loss["title"] for loss in schema["losses"]] == [
        LossSpec(n).module().__class__.__name__ for n in LOSS_NAMES
    ]
    assert schema["article_losses"] == [loss.name for loss in ARTICLE_LOSSES]
    assert schema["metrics"] == list(NEURON_METRICS) and schema["views"] == list(VIEWS)
    defaults = schema["defaults"]
    assert defaults["data"] == asdict(DataSpec())
    assert defaults["start"] == list(default_start(LossSpec()))
    grid = Grid()
    assert defaults["grid"] == {
        "w_range": list(grid.w_range), "b_range": list(grid.b_range), "size": grid.w_size
    }  # fmt: skip
    assert (defaults["epochs"], defaults["view"]) == (PlotConfig().epochs, PlotConfig().view)
    assert defaults["loss"] == asdict(LossSpec())
    assert defaults["optimizer"]["name"] == PlotConfig().optimizer.name
    assert schema["limits"]["epochs"] == {"ge": 1, "le": 2000}
    assert schema["functions"]["rosenbrock"]["start"] == list(TestFunction("rosenbrock").start)


def test_request_models_take_their_literals_from_the_library(openapi):
    parts = openapi["components"]["schemas"]
    assert parts["LossModel"]["properties"]["name"]["enum"] == list(LOSS_NAMES)
    assert parts["PhaseRequest"]["properties"]["metric"]["enum"] == list(NEURON_METRICS)
    assert parts["CommandRequest"]["properties"]["view"]["enum"] == list(VIEWS)


@pytest.mark.parametrize("name", list(OPTIMIZER_TABLE))
def test_openapi_shows_each_hyperparameter_with_default_and_bounds(openapi, name):
    entry = OPTIMIZER_TABLE[name]
    shown = openapi["components"]["schemas"][f"{entry.title}Hyper"]["properties"]
    assert list(shown) == [h.name for h in entry.hyperparameters]
    defaults = entry.defaults()
    for hyper in entry.hyperparameters:
        field = shown[hyper.name]
        assert field["default"] == defaults[hyper.name]
        if hyper.low is not None:
            assert field["minimum"] == hyper.low
        if hyper.below is not None:
            assert field["exclusiveMaximum"] == hyper.below


def test_a_hyperparameter_added_to_the_table_appears_in_the_model():
    entry = OptimizerEntry(
        "sgd", "Extended", (*OPTIMIZER_TABLE["sgd"].hyperparameters,
                            Hyperparameter("gamma", 0.5, low=0.1, below=0.9))
    )  # fmt: skip
    model = models._optimizer_model(entry)
    assert model.model_validate({"hyper": {"gamma": 0.2}}).values()["gamma"] == 0.2
    assert model.model_validate({}).values()["gamma"] == 0.5
    for bad in (0.0, 0.9):
        with pytest.raises(ValueError, match="gamma"):
            model.model_validate({"hyper": {"gamma": bad}})


@pytest.mark.parametrize(("name", "hyper"), BOUNDED, ids=[f"{n}-{h.name}" for n, h in BOUNDED])
def test_out_of_bounds_hyperparameter_gets_422_with_a_reason(client, name, hyper):
    assert hyper.low is not None
    cases = [(hyper.low - 0.5, "greater than or equal to")]
    if hyper.below is not None:
        cases.append((hyper.below, "less than"))
    for value, reason in cases:
        body = {"optimizer": {"name": name, "hyper": {hyper.name: value}}, "epochs": 2}
        response = client.post("/api/trajectories", json=body)
        assert response.status_code == 422
        (detail,) = response.json()["detail"]
        assert detail["loc"][-2:] == ["hyper", hyper.name] and reason in detail["msg"]


def test_every_table_value_the_page_can_send_is_accepted(client):
    for name, entry in OPTIMIZER_TABLE.items():
        hyper = {h.name: h.span[1] for h in entry.hyperparameters if h.kind == "float"}
        body = {"optimizer": {"name": name, "hyper": hyper}, "epochs": 3}
        assert client.post("/api/trajectories", json=body).status_code == 200, name


@pytest.mark.parametrize(
    ("body", "figure"),
    [
        ({}, PlotConfig(losses=(LossSpec(),), start=(6.0, -3.0), grid=Grid())),
        (
            {
                "losses": [{"name": n, "delta": 0.5} for n in LOSS_NAMES],
                "optimizer": {"name": "sgd", "hyper": {"lr": 0.2, "nesterov": True,
                                                       "momentum": 0.9}},
                "data": {"n": 30, "noise": 0.1}, "epochs": 40, "start": [1, 2],
                "grid": {"size": 51, "w_range": [-2, 2]}, "log": True, "view": "contour",
            },
            PlotConfig(
                data=DataSpec(n=30, noise=0.1),
                losses=tuple(LossSpec(n, delta=0.5) for n in LOSS_NAMES),
                optimizer=OptimizerSpec.of("sgd", lr=0.2, momentum=0.9, nesterov=True),
                epochs=40, start=(1.0, 2.0), grid=Grid((-2.0, 2.0), (-5.0, 8.0), 51, 51),
                log=True, view="contour",
            ),
        ),
        (
            {"function": {"name": "rosenbrock"}, "start": [1, -1.2],
             "optimizer": {"name": "rmsprop", "hyper": {"lr": 0.01, "centered": True}}},
            PlotConfig(
                losses=(TestFunction("rosenbrock"),), start=(1.0, -1.2), grid=Grid(),
                optimizer=OptimizerSpec.of("rmsprop", lr=0.01, centered=True),
            ),
        ),
    ],
)  # fmt: skip
def test_command_is_the_one_plotconfig_writes(client, body, figure):
    answer = client.post("/api/command", json=body).json()
    assert answer["command"] == figure.command(OUT)
    assert answer["args"] == figure.cli_args()


def test_the_page_colours_maps_with_the_figures_colour_map(schema):
    """The stops the page paints with, joined linearly as Plotly and the page's canvas join
    them, are the figures' colour map (``render.panels.CMAP``, matplotlib's terrain) at each
    of the 256 entries of its table, to a hex digit's rounding."""
    import matplotlib
    import numpy as np
    from matplotlib.colors import to_rgb

    from gdscope.render.panels import CMAP

    stops = schema["colorscale"]
    places = np.array([float(x) for x, _ in stops])
    rgb = np.array([to_rgb(colour) for _, colour in stops])
    assert places[0] == 0.0 and places[-1] == 1.0 and np.all(np.diff(places) > 0)
    entries = np.arange(256)  # matplotlib's table: entry i is the map at i/255
    joined = np.stack([np.interp(entries / 255, places, rgb[:, c]) for c in range(3)], axis=1)
    expected = matplotlib.colormaps[CMAP](entries)[:, :3]
    assert np.abs(joined - expected).max() <= 0.5 / 255 + 1e-12
