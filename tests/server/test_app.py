from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from gdscope.engines.batched import run_batched
from gdscope.engines.reference import train
from gdscope.optim.specs import OptimizerSpec
from gdscope.problem.data import make_data
from gdscope.problem.losses import LossSpec
from gdscope.problem.maps import Grid, loss_map
from gdscope.server.app import create_app


@pytest.fixture(scope="module")
def client():
    app = create_app()
    yield TestClient(app, base_url="http://127.0.0.1:8000")  # a served host
    app.state.pool.close()


def test_page_and_vendor_script_are_served_offline(client):
    page = client.get("/")
    assert page.status_code == 200 and '<script type="module" src="/static/app.js">' in page.text
    assert "cdn" not in page.text.lower()
    plotly = client.get("/vendor/plotly.min.js")
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/api/trajectories", "/api/phase"}


@pytest.mark.parametrize(
    "path", ["/static/../server.py", "/static/%2e%2e/server.py", "/static/../../etc/passwd"]
)
def test_no_file_outside_the_static_folder(client, path):
    assert client.get(path).status_code == 404


def test_four_losses_in_one_batched_call_match_torch_optim(client):
    body = {
        "losses": [{"name": n} for n in ("mse", "l1", "huber", "smoothl1")],
        "optimizer": {"name": "sgd", "hyper": {"lr": 0.1, "momentum": 0.9}},
        "epochs": 60,
        "start": [2.0, -1.0],
    }
    answer = client.post("/api/trajectories", json=body).json()
    assert [r["loss"] for r in answer["runs"]] == [
        "MSELoss", "L1Loss", "HuberLoss(delta=1)", "SmoothL1Loss(beta=1)"
    ]  # fmt: skip
    data = make_data()
    for run, name in zip(answer["runs"], ("mse", "l1", "huber", "smoothl1"), strict=True):
        spec = OptimizerSpec.of("sgd", lr=0.1, momentum=0.9)
        ref = train(data, loss=LossSpec(name), optimizer=spec, epochs=60, start=(2.0, -1.0))
        np.testing.assert_allclose(run["weights"], ref.weights, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(run["losses"], ref.losses, rtol=1e-4, atol=1e-5)


def test_diverged_run_is_reported_with_nulls(client):
    body = {"optimizer": {"name": "sgd", "hyper": {"lr": 2.0}}, "epochs": 100}
    run = client.post("/api/trajectories", json=body).json()["runs"][0]
    assert run["diverged_at"] == 13
    assert run["weights"][13] is None and run["weights"][12] is not None


def test_landscape_matches_the_library(client):
    body = {"losses": [{"name": "huber", "delta": 0.5}], "grid": {"size": 21}, "weight_decay": 1.0}
    answer = client.post("/api/landscape", json=body).json()
    expected = loss_map(make_data(), LossSpec("huber", delta=0.5), Grid(w_size=21, b_size=21))
    np.testing.assert_allclose(answer["maps"][0]["values"], expected.values.numpy(), rtol=1e-6)
    assert answer["maps"][0]["effective_minimum"] != answer["maps"][0]["minimum"]


def test_phase_endpoint(client):
    body = {
        "x": {"name": "lr", "lo": 0.05, "hi": 3, "count": 16, "log": True},
        "y": {"name": "momentum", "lo": 0, "hi": 0.9, "count": 8},
        "metric": "diverged",
    }
    answer = client.post("/api/phase", json=body).json()
    values = np.array(answer["values"])
    assert values.shape == (8, 16) and set(np.unique(values)) == {0.0, 1.0}
    assert np.array(answer["stable"]).shape == (8, 16)


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/api/trajectories", {"epochs": 5000}, "less than or equal to 2000"),
        ("/api/trajectories", {"epochs": 0}, "greater than or equal to 1"),
        ("/api/trajectories", {"optimizer": {"name": "lbfgs"}}, "Input should be"),
        ("/api/trajectories", {"optimizer": {"hyper": {"lr": -1}}}, "greater than or equal to 0"),
        ("/api/trajectories", {"optimizer": {"hyper": {"warp": 1}}}, "Extra inputs"),
        ("/api/trajectories", {"optimizer": {"name": "adam", "hyper": {"betas": 1}}}, "Extra"),
        (
            "/api/trajectories",
            {"optimizer": {"name": "adam", "hyper": {"beta2": 1}}},
            "less than 1",
        ),
        ("/api/trajectories", {"optimizer": {"hyper": {"nesterov": True}}}, "nesterov requires"),
        ("/api/trajectories", {"start": [1e9, 0]}, "less than or equal"),
        ("/api/trajectories", {"losses": []}, "at least 1"),
        ("/api/trajectories", {"surprise": 1}, "Extra inputs are not permitted"),
        ("/api/landscape", {"grid": {"size": 5000}}, "less than or equal to 201"),
        ("/api/landscape", {"data": {"n": 10**6}}, "less than or equal to 1000"),
        (
            "/api/phase",
            {
                "x": {"name": "lr", "lo": 0.1, "hi": 1, "count": 64},
                "y": {"name": "momentum", "lo": 0, "hi": 0.9, "count": 64},
                "epochs": 500,
                "data": {"n": 1000},
            },
            "request too large",
        ),
        (
            "/api/phase",
            {
                "x": {"name": "lr", "lo": 0, "hi": 1, "count": 4, "log": True},
                "y": {"name": "momentum", "lo": 0, "hi": 0.9, "count": 4},
            },
            "log axis",
        ),
        (
            "/api/phase",
            {
                "x": {"name": "lr;import os", "lo": 0, "hi": 1, "count": 4},
                "y": {"name": "momentum", "lo": 0, "hi": 0.9, "count": 4},
            },
            "pattern",
        ),
    ],
)
def test_bad_requests_get_422_with_a_reason(client, path, body, reason):
    response = client.post(path, json=body)
    assert response.status_code == 422
    assert reason in str(response.json()["detail"])


def test_non_finite_numbers_are_refused(client):
    response = client.post("/api/trajectories", content=b'{"start": [NaN, 0]}',
                           headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 422


def test_batched_default_matches_engine(client):
    answer = client.post(
        "/api/trajectories", json={"optimizer": {"name": "adam", "hyper": {"lr": 0.05}}}
    ).json()
    result = run_batched(make_data(), "adam", {"lr": 0.05}, epochs=100)
    np.testing.assert_allclose(answer["runs"][0]["weights"], result.path[:, 0, 0].double().numpy())


def test_functions_in_the_api(client):
    listed = client.get("/api/functions").json()
    assert set(listed) >= {"rosenbrock", "himmelblau", "saddle"}
    assert listed["rosenbrock"]["domain"] == [[-1.0, 3.0], [-2.0, 2.0]]
    grid = {"w_range": [-1, 3], "b_range": [-2, 2], "size": 11}
    answer = client.post("/api/landscape", json={"function": {"name": "booth"}, "grid": grid})
    assert answer.status_code == 200
    booth = answer.json()
    w, b = booth["weights"][3], booth["biases"][7]
    assert booth["maps"][0]["values"][3][7] == pytest.approx(
        (b + 2 * w - 7) ** 2 + (2 * b + w - 5) ** 2, rel=1e-6
    )
    assert booth["maps"][0]["minima"] == [[3.0, 1.0]] and booth["points"] is None
    body = {
        "function": {"name": "quadratic", "options": {"condition": 5}},
        "optimizer": {"name": "adam", "hyper": {"lr": 0.1}},
        "start": [2, -3],
        "epochs": 20,
    }
    runs = client.post("/api/trajectories", json=body).json()["runs"]
    from gdscope.engines.reference import train
    from gdscope.optim.specs import OptimizerSpec
    from gdscope.problem.testfunctions import TestFunction

    ref = train(None, loss=TestFunction.of("quadratic", condition=5),
                optimizer=OptimizerSpec.of("adam", lr=0.1), start=(2, -3), epochs=20)  # fmt: skip
    assert runs[0]["weights"] == pytest.approx(ref.weights.tolist(), rel=1e-5)
    bad = client.post(
        "/api/trajectories", json={"function": {"name": "quadratic", "options": {"k": 1}}}
    )
    assert bad.status_code == 422 and "no option 'k'" in bad.json()["detail"]
    bad = client.post("/api/landscape", json={"function": {"name": "os.system"}})
    assert bad.status_code == 422


# --- any request: 200 or 422, never a server error -----------------------------------------

VALID = [
    ("/api/trajectories", {
        "losses": [{"name": "huber", "delta": 0.5}, {"name": "mse"}],
        "optimizer": {"name": "sgd", "hyper": {"lr": 0.1, "momentum": 0.9, "nesterov": True}},
        "epochs": 20, "start": [2.0, -1.0], "batch_size": 10, "shuffle_seed": 1,
        "data": {"seed": 1, "n": 40, "noise": 0.5},
    }),
    ("/api/trajectories", {
        "function": {"name": "quadratic", "options": {"condition": 10}},
        "optimizer": {"name": "adam", "hyper": {"lr": 0.05, "beta1": 0.8}}, "epochs": 20,
    }),
    ("/api/landscape", {
        "losses": [{"name": "huber", "delta": 0.5}], "grid": {"size": 15}, "weight_decay": 1.0,
    }),
    ("/api/phase", {
        "x": {"name": "lr", "lo": 0.05, "hi": 3, "count": 5, "log": True},
        "y": {"name": "momentum", "lo": 0, "hi": 0.9, "count": 3}, "metric": "final_loss",
    }),
]  # fmt: skip
KEYS = [
    "lr",
    "betas",
    "beta2",
    "momentum",
    "alpha",
    "eps",
    "delta",
    "beta",
    "name",
    "size",
    "count",
    "lo",
    "hi",
    "epochs",
    "start",
    "n",
    "seed",
    "metric",
    "function",
    "losses",
]
ODD = [0, -1, 1, 0.5, 1e4, -1e4, 1e-300, 1e300, 2**63, 3.5, "x", "", None, True, [], {}, [1, 2],
       [1e4, -1e4], "sgd", "mse", "adam", "lr", "diverged", "nan"]  # fmt: skip


def _places(value, at=()):
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, inner in items:
        yield (*at, key)
        yield from _places(inner, (*at, key))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_mangled_request_gets_200_or_422(client, data):
    import copy

    path, body = copy.deepcopy(data.draw(st.sampled_from(VALID)))
    for _ in range(data.draw(st.integers(1, 3))):
        places = list(_places(body))
        if not places:
            break
        place = data.draw(st.sampled_from(places))
        parent = body
        for key in place[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["delete", "rename", "replace"]))
        if isinstance(parent, dict) and action == "delete":
            del parent[place[-1]]
        elif isinstance(parent, dict) and action == "rename":  # another field's name
            parent[data.draw(st.sampled_from(KEYS))] = parent.pop(place[-1])
        else:
            parent[place[-1]] = copy.deepcopy(data.draw(st.sampled_from(ODD)))
    response = client.post(path, json=body)
    assert response.status_code in (200, 422), (path, body, response.text[:300])
