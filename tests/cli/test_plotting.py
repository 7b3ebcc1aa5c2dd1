from __future__ import annotations

from gdscope.cli.main import main

from ..reference import ARTICLE_LOG


def test_train_log_prints_the_articles_lines(capsys):
    assert main(["train", "--log"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 100
    for epoch, line in ARTICLE_LOG.items():
        assert lines[epoch] == line
