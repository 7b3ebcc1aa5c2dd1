"""The page keeps no copy of the library's names, flags or defaults: it asks /api/schema."""

from __future__ import annotations

import re

from gdscope.files import RECORD_KEYS
from gdscope.optim.table import OPTIMIZER_TABLE
from gdscope.problem.data import DataSpec
from gdscope.problem.losses import LOSS_NAMES
from gdscope.render.panels import colour_stops
from gdscope.server.app import WEB
from gdscope.studies.phase import METRICS

# The page moves a momentum axis off 0 while nesterov is on (torch refuses nesterov without
# momentum), so that the phase diagram does not fail: the one name it must know.
ALLOWED = {"momentum"}


def _quoted(text: str) -> set[str]:
    return set(re.findall(r"\"([^\"\n]*)\"", text)) | set(re.findall(r"'([^'\n]*)'", text))


def test_page_holds_no_copy_of_names_flags_or_defaults():
    script = (WEB / "app.js").read_text(encoding="utf-8")
    page = (WEB / "index.html").read_text(encoding="utf-8")
    names = set(OPTIMIZER_TABLE) | set(LOSS_NAMES) | set(METRICS)
    names |= {h.name for e in OPTIMIZER_TABLE.values() for h in e.hyperparameters}
    names |= {e.title for e in OPTIMIZER_TABLE.values()} | set(RECORD_KEYS.values())
    found = (_quoted(script) | _quoted(page)) & names
    assert found <= ALLOWED
    assert re.findall(r"[\"'`]--[a-z]", script) == []  # no command-line flags
    assert str(DataSpec().seed) not in script + page
    # nor the figures' colour map: its stops come from /api/schema's colorscale
    assert not {colour for _, colour in colour_stops()} & {c.lower() for c in _quoted(script)}
