"""The article's figures, looked up by number, key or name."""

from __future__ import annotations

import pytest

from gdscope.errors import GdscopeError
from gdscope.jobs.article import article_figure


def test_article_figure_lookup():
    assert article_figure("6").key == "fig06"
    assert article_figure("momentum").key == "fig06"
    with pytest.raises(GdscopeError):
        article_figure("fig99")
