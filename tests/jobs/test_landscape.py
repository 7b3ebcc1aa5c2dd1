"""The landscape job: the CLI's flat keywords and the grouped options make the same job."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gdscope.errors import GdscopeError
from gdscope.jobs.landscape import LandscapeJob
from gdscope.nets.plane import EvaluationOptions
from gdscope.nets.survey import PlaneOptions

SPEC = {"model": "gdscope.examples.mlp:make_model", "data": "gdscope.examples.mlp:make_loader"}


def test_flat_keywords_and_grouped_options_make_the_same_job():
    flat = LandscapeJob(**SPEC, path=Path("rec"), directions="pca", x=(-1.0, 1.0, 5),
                        strategy="loop", chunk=4, device="cpu")  # fmt: skip
    grouped = LandscapeJob(
        **SPEC, path=Path("rec"), plane=PlaneOptions(directions="pca", x=(-1.0, 1.0, 5)),
        evaluation=EvaluationOptions(strategy="loop", chunk=4, device="cpu"),
    )  # fmt: skip
    assert flat == grouped
    assert flat.loss == "crossentropy" and flat.plane.directions == "pca"
    assert replace(flat, loss="mse") == LandscapeJob(
        **SPEC, loss="mse", path=Path("rec"), plane=flat.plane, evaluation=flat.evaluation
    )
    with pytest.raises(AttributeError):
        flat.loss = "mse"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"directions": "pca"}, "PCA directions need a recorded path"),
        ({"directions": "line"}, "a line needs the model at its end"),
        ({"strategy": "fast"}, "strategy must be one of"),
        ({"x": (1.0, 0.0, 3)}, "LO < HI"),
    ],
)
def test_a_job_is_checked_when_made(options, message):
    with pytest.raises(GdscopeError, match=message):
        LandscapeJob(**SPEC, **options)


def test_the_notebook_names_still_import():
    import gdscope
    from gdscope.jobs import landscape
    from gdscope.nets import survey

    assert gdscope.model_landscape is survey.model_landscape
    assert landscape.LandscapeResult is survey.LandscapeResult
    assert gdscope.draw_landscape is landscape.draw_landscape
