"""The mode-connectivity jobs: ``gdscope connect`` (a trained curve between two checkpoints, its
figure and numbers, with records) and ``gdscope example connect`` (two digits MLPs)."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from gdscope import interrupts
from gdscope.devices import torch_threads
from gdscope.errors import GdscopeError
from gdscope.files import (
    check_target,
    check_unchanged,
    content_sha256,
    make_folder,
    record_json,
    save_figure,
    write_atomic,
    write_text,
)
from gdscope.jobs.landscape import DEFAULT_LOSS, load_parts, state_dict_in, users_code
from gdscope.jobs.records import DEFAULT_DPI, record
from gdscope.nets.curves import ConnectOptions, ConnectResult, connect, options_from

__all__ = [
    "EXAMPLE",
    "ConnectJob",
    "ConnectOutput",
    "draw_connect",
    "load_network",
    "make_connect",
    "make_connect_example",
    "run_connect",
]


def _first_misfit(model: nn.Module, state: Mapping[str, Any]) -> str | None:
    """The first way ``state`` does not fit ``model``: a tensor it lacks, one the model lacks,
    or a shape that differs (in the model's order), as words; None when it fits."""
    own = model.state_dict()
    for name, tensor in own.items():
        if name not in state:
            return f"the model has {name}, the file not"
        theirs = state[name]
        if not isinstance(theirs, Tensor):
            return f"{name} is a {type(theirs).__name__} in the file, not a tensor"
        if theirs.shape != tensor.shape:
            return (f"{name} is {tuple(theirs.shape)} in the file, {tuple(tensor.shape)} in "
                    "the model")  # fmt: skip
    extra = next((name for name in state if name not in own), None)
    return None if extra is None else f"the file has {extra}, the model not"


def load_network(make_model: Callable[[], nn.Module], file: Path, *, unpickle: bool = False
                 ) -> nn.Module:  # fmt: skip
    """A new model from ``make_model`` with the weights of ``file``: a ``state_dict`` saved
    with ``torch.save`` (or a checkpoint dict holding one, as ``gdscope landscape`` reads),
    loaded with ``weights_only=True``; or, with ``unpickle``, a whole saved ``nn.Module``
    (``torch.save(model)``), whose loading runs code from the file. A file that does not fit
    the model is refused in one line naming the first tensor that differs."""
    try:
        saved = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not zipfile.is_zipfile(file):  # (torch.save writes a zip archive)
            raise GdscopeError(f"cannot load {file}: not a torch.save file") from None
        if not unpickle:
            raise GdscopeError(f"{file} holds Python objects, not only tensors (a saved "
                               "nn.Module?): pass unpickle to load it, which runs code from "
                               "the file (only for files you trust)",
                               settings=["unpickle"]) from None  # fmt: skip
        try:
            saved = torch.load(file, map_location="cpu", weights_only=False)
        except Exception as error:  # the file is the user's: any failure means "not loadable"
            raise GdscopeError(f"cannot load {file} ({type(error).__name__})") from None
    except FileNotFoundError:
        raise GdscopeError(f"{file} does not exist") from None
    except Exception as error:  # the file is the user's: any failure means "not a checkpoint"
        raise GdscopeError(f"cannot load {file}: not a torch.save file "
                           f"({type(error).__name__})") from None  # fmt: skip
    state = saved.state_dict() if isinstance(saved, nn.Module) else state_dict_in(saved)
    if not isinstance(state, Mapping):
        raise GdscopeError(f"{file} holds a {type(state).__name__}, not a state_dict or an "
                           "nn.Module")  # fmt: skip
    model = make_model()
    misfit = _first_misfit(model, state)
    if misfit is not None:
        raise GdscopeError(f"{file} does not fit the model: {misfit}")
    model.load_state_dict(state)
    return model


@dataclass(frozen=True)
class ConnectJob:
    """What ``gdscope connect`` computes: the model, data and loss to import
    (``module:function``), the two checkpoints (and their SHA-256, once pinned: a replay reads
    the very same weights), the device, whether a saved ``nn.Module`` may be unpickled, and
    the curve's ``options``."""

    model: str
    data: str
    a: Path
    b: Path
    loss: str = DEFAULT_LOSS
    a_sha256: str | None = None
    b_sha256: str | None = None
    device: str = "cpu"
    unpickle: bool = False
    options: ConnectOptions = field(default_factory=ConnectOptions)
    threads: int | None = None

    def __post_init__(self) -> None:
        count = self.threads
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                                  or count < 1):  # fmt: skip
            raise GdscopeError(f"threads must be a positive integer or None, got {count!r}")

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(a=str(self.a), b=str(self.b), options=self.options.to_dict())
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, where: str = "job") -> ConnectJob:
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise GdscopeError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        options = options_from(raw.get("options", {}), where=f"{where}.options")
        rest = {k: v for k, v in raw.items() if k not in ("options", "a", "b")}
        try:
            return cls(**rest, a=Path(raw["a"]), b=Path(raw["b"]), options=options)
        except TypeError as error:  # a required field is missing
            raise GdscopeError(f"{where}: {error}") from None

    def pinned(self) -> ConnectJob:
        """The job with each checkpoint's SHA-256 (what its record keeps)."""
        return replace(self, a_sha256=self.a_sha256 or content_sha256(self.a),
                       b_sha256=self.b_sha256 or content_sha256(self.b))  # fmt: skip


def run_connect(
    job: ConnectJob,
    *,
    resume: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> ConnectResult:
    """Import the job's model, data and loss, load both checkpoints, train the curve and
    measure it (``nets.curves.connect``)."""
    make_model, make_data, loss_fn = load_parts(job.model, job.data, job.loss)
    check_unchanged(job.a, job.a_sha256)
    check_unchanged(job.b, job.b_sha256)
    doing = f"connecting {job.a.name} and {job.b.name} ({job.model} on {job.data} with loss " \
        f"{job.loss})"  # fmt: skip
    with users_code(doing), torch_threads(job.threads):
        first = load_network(make_model, job.a, unpickle=job.unpickle)
        second = load_network(make_model, job.b, unpickle=job.unpickle)
        return connect(first, second, make_data(), loss_fn, options=job.options,
                       device=job.device, resume=resume, progress=progress,
                       log=log)  # fmt: skip


def draw_connect(result: ConnectResult, *, title: str | None = None,
                 names: tuple[str, str] = ("A", "B"), log: bool = True) -> Figure:  # fmt: skip
    """The plane with both paths (left) and the loss along them (right), seaborn-style: the
    renderers are ``render.connectivity``'s and return what they drew."""
    from gdscope.render.connectivity import plot_connect_plane, plot_paths

    fig = Figure(figsize=(14, 5.2))
    # The plane is drawn to scale (both axes are distances), so wider than high: more room.
    spec = fig.add_gridspec(1, 2, width_ratios=(1.6, 1))
    plane = fig.add_subplot(spec[0])
    plot_connect_plane(result, ax=plane, log=log, names=names)
    plane.set_title("loss on the plane through the two networks and the bend", fontsize=10)
    paths = fig.add_subplot(spec[1])
    plot_paths(result, ax=paths, log=log, names=names)
    paths.set_title("loss along the paths", fontsize=10)
    epochs = result.options.epochs
    fig.suptitle(title or f"mode connectivity: the straight line and a Bézier curve trained "
                          f"for {epochs} epochs")  # fmt: skip
    if result.interrupted:
        fig.text(0.01, 0.01, f"interrupted: {result.measured} of {result.total} points "
                 "measured; the rest is left blank", fontsize=8, va="bottom")  # fmt: skip
    fig.tight_layout()
    return fig


@dataclass(frozen=True, eq=False)
class ConnectOutput:
    """What ``make_connect`` computed and wrote (nothing when Ctrl-C stopped the training)."""

    result: ConnectResult
    written: tuple[Path, ...]


def make_connect(
    job: ConnectJob,
    out: Path,
    *,
    save: Path | None = None,
    resume: Path | None = None,
    dpi: float = DEFAULT_DPI,
    force: bool = False,
    title: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    wrote: Callable[[Path], None] | None = None,
) -> ConnectOutput:
    """Train and measure the curve, then save ``save`` (JSON, the record inside) and the
    figure ``out`` (with its record). Ctrl-C while training writes nothing (``resume`` keeps
    the epochs finished); while measuring, the points measured are drawn and the rest blank."""
    check_target(out, force=force)
    if save is not None:
        if save.suffix.lower() != ".json":
            raise GdscopeError(f"save takes a .json file, got {save.name!r}", settings=["save"])
        check_target(save, force=force)
    job = job.pinned()  # the record pins both checkpoints
    result = run_connect(job, resume=resume, progress=progress, log=log)
    if not result.trained:
        return ConnectOutput(result, ())
    cut = f"{result.measured} of {result.total} points measured" if result.interrupted else None
    names = (job.a.name, job.b.name)
    rec = record("connect", job=job.to_dict(), dpi=dpi, title=title, interrupted=cut)
    written: list[Path] = []
    with interrupts.deferred():  # what finished is written even if Ctrl-C comes now
        if save is not None:
            text = record_json({**result.to_dict(), "record": rec})
            written.append(write_text(save, text, force=force))
            if wrote is not None:
                wrote(written[-1])
        fig = draw_connect(result, title=title, names=names)
        written.append(save_figure(fig, out, force=force, dpi=dpi, config=rec))
        if wrote is not None:
            wrote(written[-1])
    return ConnectOutput(result, tuple(written))


@dataclass(frozen=True)
class ExampleSetup:
    """``gdscope example connect``: two digits MLPs (``gdscope.examples.digits``) trained from
    the seeds ``seeds`` (their start and their shuffling) with SGD (``lr``, momentum 0.9,
    batches of ``batch_size``) for ``epochs``; then the curve between them with ``curve``."""

    seeds: tuple[int, int] = (0, 1)
    epochs: int = 60
    lr: float = 0.1
    batch_size: int = 64
    curve: ConnectOptions = field(
        default_factory=lambda: ConnectOptions(epochs=100, lr=0.1, batch_size=64, grid=31)
    )


EXAMPLE = ExampleSetup()
"""What ``gdscope example connect`` trains (measured: ``docs/connect.md``)."""
EXAMPLE_THREADS = 1
"""torch's threads in the example (and so in its record: a replay runs as many)."""
EXAMPLE_FILES = ("a.pt", "b.pt", "connect.png", "connect.json")
"""What it writes into its folder: the two networks, the figure, the numbers."""


def _save_state(model: nn.Module, tmp: Path) -> None:
    torch.save(model.state_dict(), tmp)


def _train_digits(seed: int, setup: ExampleSetup) -> nn.Module | None:
    """One of the example's MLPs, trained; None when Ctrl-C stopped it."""
    from gdscope.examples import digits
    from gdscope.nets.fit import fit

    model = digits.make_model(seed)
    loader = digits.make_loader(setup.batch_size, shuffle=True, seed=seed)
    sgd = torch.optim.SGD(model.parameters(), lr=setup.lr, momentum=0.9)
    with interrupts.polled():
        result = fit(model, loader, nn.CrossEntropyLoss(), sgd, epochs=setup.epochs,
                     should_stop=interrupts.requested)  # fmt: skip
    return None if result.stopped else model


def make_connect_example(
    out: Path,
    *,
    setup: ExampleSetup = EXAMPLE,
    force: bool = False,
    log: Callable[[str], None] = print,
    wrote: Callable[[Path], None] | None = None,
) -> ConnectOutput:
    """Train two digits MLPs from different seeds, save them (``out/a.pt``, ``out/b.pt``), and
    connect them: ``out/connect.png`` and ``out/connect.json``. Ctrl-C while a network trains
    ends it (``KeyboardInterrupt``) with the networks saved before."""
    make_folder(out)
    targets = [out / name for name in EXAMPLE_FILES]
    for target in targets:
        check_target(target, force=force)
    first, second, figure, numbers = targets
    # One thread: the matrices are small, and on this busy 2-core machine (load ~11) a first
    # run on two threads took 125 s where one thread took 7 s (measured once each, by hand).
    with torch_threads(EXAMPLE_THREADS):
        return _example(setup, first, second, figure, numbers, force=force, log=log, wrote=wrote)


def _example(setup: ExampleSetup, first: Path, second: Path, figure: Path, numbers: Path, *,
             force: bool, log: Callable[[str], None],
             wrote: Callable[[Path], None] | None) -> ConnectOutput:  # fmt: skip
    for seed, file in zip(setup.seeds, (first, second), strict=True):
        log(f"connect: training a digits MLP from seed {seed} ({setup.epochs} epochs)")
        model = _train_digits(seed, setup)
        if model is None:
            raise KeyboardInterrupt
        write_atomic(file, partial(_save_state, model), force=force)
        if wrote is not None:
            wrote(file)
    job = ConnectJob(model="gdscope.examples.digits:make_model",
                     data="gdscope.examples.digits:make_loader", a=first, b=second,
                     options=setup.curve, threads=EXAMPLE_THREADS)  # fmt: skip
    log(f"connect: training the curve ({setup.curve.epochs} epochs), then measuring the line, "
        f"the curve ({setup.curve.points} points each) and the plane "
        f"({setup.curve.grid}×{setup.curve.grid})")  # fmt: skip
    title = ("mode connectivity on digits: two MLPs from different seeds, a straight line and "
             "a Bézier curve between them")  # fmt: skip
    return make_connect(job, figure, save=numbers, force=force, title=title, log=log,
                        wrote=wrote)  # fmt: skip
