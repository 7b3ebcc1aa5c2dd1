"""``reproduce`` keeps one format a folder: ``--force`` removes the figures a previous run wrote
in another format (told by their records), never a file it did not write."""

from __future__ import annotations

import pytest

from gdscope.cli.main import main
from gdscope.errors import GdscopeError
from gdscope.jobs.article import ARTICLE_FIGURES
from gdscope.jobs.reproduce import previous_figures, reproduce

FIRST = ARTICLE_FIGURES[:1]  # fig01, the cheapest


def test_another_format_is_refused_without_force_naming_what_is_there(tmp_path):
    reproduce(tmp_path, figures=FIRST, dpi=30)
    with pytest.raises(GdscopeError, match=r"holds the article's figures as png.*force=True"):
        reproduce(tmp_path, fmt="svg", figures=FIRST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig01-data.png", "index.html"]


def test_force_replaces_the_previous_format_and_leaves_other_files(tmp_path):
    reproduce(tmp_path, figures=FIRST, dpi=30)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "fig02-fit.png").write_bytes(b"not a gdscope file")  # a figure's name, no record
    assert [p.name for p in previous_figures(tmp_path)["png"]] == ["fig01-data.png"]
    written = reproduce(tmp_path, fmt="svg", figures=FIRST, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fig01-data.svg", "fig02-fit.png", "index.html", "notes.txt"
    ]  # fmt: skip
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert {p.name for p in written} == {"fig01-data.svg", "index.html"}
    assert list(previous_figures(tmp_path)) == ["svg"]


def test_the_command_says_so_in_one_line(tmp_path, capsys):
    reproduce(tmp_path, figures=FIRST, dpi=30)
    assert main(["reproduce", "--out", str(tmp_path), "--format", "pdf"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "as png" in err


def test_a_run_cut_short_leaves_the_previous_format_whole(tmp_path, monkeypatch):
    from gdscope.jobs import reproduce as module

    reproduce(tmp_path, figures=FIRST, dpi=30)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "draw_article_figure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        reproduce(tmp_path, fmt="svg", figures=FIRST, force=True)
    assert [p.name for p in previous_figures(tmp_path)["png"]] == ["fig01-data.png"]
