from __future__ import annotations

from gdscope.cli.main import main

from ..reference import ARTICLE_LOG


def test_train_log_prints_the_articles_lines(capsys):
    assert main(["train", "--log"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 100
    for epoch, line in ARTICLE_LOG.items():
        assert lines[epoch] == line


def test_a_data_csv_is_not_overwritten_by_the_output(tmp_path, capsys):
    points = tmp_path / "pts.csv"
    points.write_text("x,y\n0,1\n1,3\n2,5\n")
    for args in (["train", "--save", str(points)],
                 ["plot", "--out", str(tmp_path / "p.png"), "--save", str(points)]):  # fmt: skip
        assert main([*args, "--data", str(points), "--force"]) == 2
        err = capsys.readouterr().err
        assert err == f"gdscope: error: --data {points} is also an output: name another file\n"
    assert points.read_text() == "x,y\n0,1\n1,3\n2,5\n"
