"""Every ``gdscope …`` command line and every Python block of README.md and of the documentation
pages (docs/*.md), run as written.

The pages are parsed here, not copied: a command added to one is tested from then on. Each
command runs in-process (``gdscope.cli.main.main``) in a temporary folder and must exit 0; a
Python block is ``exec``-ed there. What cannot run here is skipped with its reason; a command
the pages repeat runs once."""

from __future__ import annotations

import csv
import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from gdscope.cli.main import main
from gdscope.examples import mlp
from gdscope.problem.data import make_data

README = Path(__file__).parents[1] / "README.md"
ELSEWHERE = {
    "frameworks.md": "its examples fit Lightning and Hugging Face models (tests/integrations)",
    "from-loss-landscape.md": "its commands read the reader's own surface files (SURFACE.h5)",
}
"""Documentation pages whose blocks this file does not run, and why."""
PAGES = (README, *(p for p in sorted(README.parent.joinpath("docs").glob("*.md"))
                   if p.name not in ELSEWHERE))  # fmt: skip
"""The README, then the documentation site's pages."""

# Why a command is not run here, by what it contains (first match wins).
SKIPS: tuple[tuple[str, str], ...] = (
    (r"(^| )\.\.\.( |$)", "'...' stands for options the reader chooses"),
    (r"(^| )DIR( |$)|\[", "DIR and [options] are placeholders"),
    (r"^gdscope serve", "serve runs a web server until it is stopped (tests/server test the app)"),
    (
        r"^gdscope board",
        "board runs a web server until it is stopped (tests/server/test_board*.py)",
    ),
    (r"^gdscope reproduce", "draws all ten figures (tests/jobs/test_reproduce.py runs it)"),
    (r" > ", "writes into the reader's shell set-up (tests/cli/test_completion.py)"),
    (r"mypkg\.", "mypkg is the reader's own package"),
    (r"--config run\.toml", "run.toml is the reader's own file (tests/jobs/test_plotconfig.py)"),
    (r"--backend ray", "needs a Ray cluster"),
    (
        r"^gdscope example cnn",
        "trains a CNN and maps its landscape: minutes on a CPU (the same jobs run on small"
        " networks in tests/jobs/test_landscape.py)",
    ),
    (
        r"^gdscope example connect",
        "trains two digits MLPs and a curve between them: 16-22 s on a busy CPU (the example"
        " itself is a slow test in tests/jobs/test_connect.py)",
    ),
    (
        r"^gdscope connect connect/",
        "reads the two networks that gdscope example connect saves (tests/cli/test_connect.py"
        " runs the command on networks of its own)",
    ),
    (
        r"^gdscope example (skip|batch-size)",
        "trains networks on the digits and maps their curvature: minutes on a CPU (the examples'"
        " jobs run on small settings in tests/jobs/test_papers.py)",
    ),
    (
        r"^gdscope example eos",
        "trains three networks for 2,000 full-batch steps: over a minute on a busy CPU (the"
        " example itself is a slow test in tests/jobs/test_hessian.py)",
    ),
)


def write_points(folder: Path) -> None:
    """``points.csv``, the reader's data in the README: here the article's points."""
    data = make_data()
    with (folder / "points.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x", "y"])
        writer.writerows(zip(data.x.tolist(), data.y.tolist(), strict=True))


def record_run(folder: Path, *, name: str) -> None:
    """``runs/NAME``, a recording the reader brings: the example MLP trained one epoch by
    ``torch.optim``'s SGD (with momentum) or Adam, recorded by ``gdscope.Recorder``."""
    from gdscope import Recorder

    model = mlp.make_model(seed=1)
    optimizer = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if name == "sgd"
                 else torch.optim.Adam(model.parameters(), lr=0.01))  # fmt: skip
    recorder = Recorder(model, every=2, path=folder / "runs" / name)
    for inputs, targets in mlp.make_loader(shuffle=True):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        recorder.step(loss)


READER_FILES = {
    "points.csv": write_points,
    "runs/sgd": functools.partial(record_run, name="sgd"),
    "runs/adam": functools.partial(record_run, name="adam"),
}
"""Files the README's commands read but the reader brings, made here."""


@dataclass(frozen=True)
class Block:
    language: str
    line: int
    text: str
    page: str = "README.md"


def blocks(page: Path = README) -> list[Block]:
    found, lines = [], page.read_text().splitlines()
    start = language = None
    for number, line in enumerate(lines, 1):
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence and start is None:
            start, language = number, fence.group(1)
        elif fence:
            text = "\n".join(lines[start : number - 1])
            found.append(Block(language or "", start, text, page.name))
            start = None
    return found


@dataclass(frozen=True)
class Command:
    line: int
    text: str
    page: str = "README.md"

    def args(self) -> list[str]:
        return shlex.split(self.text, comments=True)[1:]

    def outputs(self) -> list[str]:
        args = self.args()
        return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg in ("--out", "--save")]


def commands() -> list[Command]:
    found = []
    for block in (b for page in PAGES for b in blocks(page)):
        if block.language != "sh":
            continue
        pending, first = "", 0
        for number, line in enumerate(block.text.splitlines(), block.line + 1):
            pending, first = pending + line, first or number
            if line.endswith("\\"):  # continued on the next line
                pending = pending[:-1] + " "
                continue
            text = " ".join(shlex.split(pending, comments=True))
            if text.startswith("gdscope ") and text not in {c.text for c in found}:
                found.append(Command(first, text, block.page))
            pending, first = "", 0
    return found


COMMANDS = commands()


def needs(command: Command) -> list[Command]:
    """The latest earlier command that makes each file ``command`` reads (``replay FILE``)."""
    args = command.args()
    inputs = args[1:2] if args[0] == "replay" else []
    earlier = COMMANDS[: COMMANDS.index(command)]
    return [[c for c in earlier if name in c.outputs()][-1] for name in inputs]


def run_command(command: Command) -> None:
    code = main(command.args())
    assert code == 0, f"{command.page} line {command.line}: {command.text} exited with {code}"


def command_params() -> list[object]:
    params = []
    for command in COMMANDS:
        reason = next((why for pattern, why in SKIPS if re.search(pattern, command.text)), None)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        name = f"{command.page}:{command.line}:{command.text}"
        params.append(pytest.param(command, marks=marks, id=name))
    return params


@pytest.mark.parametrize("command", command_params())
def test_command(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, make in READER_FILES.items():
        if name in command.args():
            make(tmp_path)
    for earlier in needs(command):
        run_command(earlier)
    run_command(command)


def reader_names() -> dict[str, object]:
    """What a Python block takes as the reader's own (``model``, ``loader``, …): a small MLP,
    60 mini-batches an epoch, so that a snapshot every 10 steps gives a path PCA can plane."""
    model = mlp.make_model(seed=1)
    return {
        "torch": torch,
        "model": model,
        "loader": mlp.make_loader(batch_size=25),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
    }


PYTHON = [b for page in PAGES for b in blocks(page) if b.language == "python"]


@pytest.mark.parametrize("block", PYTHON, ids=[f"{b.page} line {b.line}" for b in PYTHON])
def test_python_block(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(block.text, f"{block.page}:{block.line}", "exec"), reader_names())


def test_the_readme_has_commands_and_python_blocks():
    assert len(COMMANDS) > 20 and len(PYTHON) >= 2


def test_the_pages_ask_for_the_python_that_pyproject_requires():
    import tomllib

    project = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]
    lowest = re.fullmatch(r">=(3\.\d+)", project["requires-python"])
    assert lowest is not None, project["requires-python"]
    for page in (README, README.parent / "docs" / "getting-started.md"):
        said = set(re.findall(r"Python ≥ (3\.\d+)", page.read_text()))
        assert said == {lowest[1]}, (page.name, said)
