from __future__ import annotations

import json
import re
import shlex
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from gdscope.cli.main import build_parser, main, plot_config
from gdscope.errors import GdscopeError
from gdscope.jobs.article import ARTICLE_FIGURES, article_figure
from gdscope.jobs.reproduce import reproduce


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("article")
    assert main(["reproduce", "--out", str(out), "--dpi", "60"]) == 0
    return out


@pytest.mark.slow
def test_all_ten_figures_and_the_gallery(gallery):
    names = sorted(p.name for p in gallery.iterdir())
    assert names == sorted([spec.filename("png") for spec in ARTICLE_FIGURES] + ["index.html"])
    for spec in ARTICLE_FIGURES:
        image = Image.open(gallery / spec.filename("png"))
        assert image.size[0] > 200
        record = json.loads(image.text["Description"])
        assert record["figure"] == spec.key


@pytest.mark.slow
def test_gallery_shows_each_figure_with_caption_config_and_command(gallery):
    page = (gallery / "index.html").read_text()
    parser = _Images()
    parser.feed(page)
    assert parser.sources == [spec.filename("png") for spec in ARTICLE_FIGURES]
    for spec in ARTICLE_FIGURES:
        assert f"gdscope figure {spec.key}" in page
        assert spec.caption.split(".")[0].replace("'", "&#x27;") in page
    assert page.count("Exact configuration") == 10


@pytest.mark.slow
def test_gallery_plot_commands_rebuild_the_same_configuration(gallery):
    page = (gallery / "index.html").read_text()
    commands = re.findall(r"^gdscope plot .*$", page, flags=re.M)
    assert len(commands) == 7  # figs 3, 4, 5, 6, 8, 9, 10
    for command in commands:
        args = shlex.split(command.replace("&#x27;", "'"))[1:]
        config = plot_config(build_parser().parse_args(args))
        out = args[args.index("--out") + 1]
        spec = article_figure(out.split("-")[0])
        assert config == spec.config


def test_refuses_a_non_empty_directory_unless_forced(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(GdscopeError, match="not empty"):
        reproduce(tmp_path, figures=ARTICLE_FIGURES[:1])
    written = reproduce(tmp_path, figures=ARTICLE_FIGURES[:1], force=True, dpi=40)
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert {p.name for p in written} == {"fig01-data.png", "index.html"}


def test_svg_format(tmp_path):
    reproduce(tmp_path, fmt="svg", figures=ARTICLE_FIGURES[2:3])
    assert (tmp_path / "fig03-mse-map.svg").read_text().lstrip().startswith("<?xml")
