"""The suite's own rule (tests/conftest.py): a missing dev extra or browser skips on a developer's
machine and fails under ``CI=true``, through ``require``/``chromium``/``missing`` or a bare
``pytest.importorskip``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import tests.conftest as conftest


@pytest.mark.parametrize(("ci", "outcome"), [(False, pytest.skip.Exception),
                                             (True, pytest.fail.Exception)])  # fmt: skip
def test_a_missing_module_skips_and_fails_under_ci(monkeypatch, ci, outcome):
    monkeypatch.setattr(conftest, "ON_CI", ci)
    with pytest.raises(outcome, match="no_such_module_gdscope"):
        conftest.require("no_such_module_gdscope")
    assert conftest.require("json").dumps([1]) == "[1]"  # present: the module itself


@pytest.mark.parametrize(("ci", "outcome"), [(False, pytest.skip.Exception),
                                             (True, pytest.fail.Exception)])  # fmt: skip
def test_a_missing_browser_skips_and_fails_under_ci(monkeypatch, ci, outcome):
    monkeypatch.setattr(conftest, "ON_CI", ci)
    monkeypatch.setattr(conftest.shutil, "which", lambda name: None)
    with pytest.raises(outcome, match="chromium"):
        conftest.chromium()


@pytest.mark.parametrize("ci", [False, True])
def test_a_bare_importorskip_is_turned_into_a_failure_under_ci(monkeypatch, ci):
    with pytest.raises(pytest.skip.Exception) as skipped:  # pytest's own wording, pinned pytest
        pytest.importorskip("no_such_module_gdscope")
    monkeypatch.setattr(conftest, "ON_CI", ci)
    report = SimpleNamespace(skipped=True, outcome="skipped", longrepr=str(skipped.value))
    conftest._fail_import_skips(report)  # type: ignore[arg-type]
    assert report.outcome == ("failed" if ci else "skipped")
    other = SimpleNamespace(skipped=True, outcome="skipped", longrepr="needs a CUDA device")
    conftest._fail_import_skips(other)  # type: ignore[arg-type]
    assert other.outcome == "skipped"  # a genuine skip stays one
