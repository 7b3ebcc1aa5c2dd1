"""The field's landmark figures on real data (scikit-learn's digits), one ``gdscope example``
each: skip connections and the landscape's convexity (Li et al. 2018, ``make_skip``), and sharp
and flat minima of small and large batches (Keskar et al. 2017; Li et al. 2018,
``make_batch_size``). The edge of stability on the digits is ``jobs.hessian.make_eos``."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from gdscope import interrupts
from gdscope.devices import torch_threads
from gdscope.errors import GdscopeError
from gdscope.files import check_target, make_folder, record_json, save_figure, write_text
from gdscope.nets.convexity import NON_CONVEX, ConvexityOptions
from gdscope.nets.plane import Batches, ModelSurface, materialize
from gdscope.nets.survey import LandscapeResult, PlaneOptions, model_landscape

__all__ = [
    "BATCH_SIZES",
    "SKIP_CONVEXITY",
    "SKIP_EPOCHS",
    "PaperOutput",
    "make_batch_size",
    "make_skip",
]

Log = Callable[[str], None]
Wrote = Callable[[Path], None] | None

SKIP_EPOCHS = 20
"""How long each network of ``example skip`` trains (SGD+momentum, batches of 64)."""
SKIP_CONVEXITY = ConvexityOptions(points=11, samples=512)
"""``example skip``'s convexity maps: 11 × 11 points, Hessians of the loss over the first 512
training images (each point costs tens of Hessian-vector products)."""
BATCH_SIZES = {"small": (16, 0.01), "large": (512, 0.1)}
"""``example batch-size``'s two trainings: batch size and learning rate (SGD, momentum 0.9;
the large batch takes fewer, longer steps, so a larger rate, as is usual)."""
TARGET_LOSS = 0.01
"""``example batch-size`` trains each network until its loss over the whole training split
falls below this: the two minima compared are equally well fitted."""
MAX_EPOCHS = 2000
"""The most epochs either batch size trains (the small one needs about 30, the large 100)."""


@dataclass(frozen=True, eq=False)
class PaperOutput:
    """What an example measured (``numbers``, also saved as JSON) and the files it wrote;
    ``interrupted``: Ctrl-C stopped it and the files hold what finished."""

    numbers: dict[str, Any]
    written: tuple[Path, ...]
    interrupted: bool = False
    results: dict[str, LandscapeResult] = field(default_factory=dict)


def _train(model: nn.Module, loader: Any, optimizer: torch.optim.Optimizer, *, epochs: int,
           data: Batches, target: float | None = None) -> tuple[int, float]:  # fmt: skip
    """Train in train mode for ``epochs`` (or until the mean loss over ``data`` falls below
    ``target``, checked after each epoch), stopping at Ctrl-C; the epochs done and the final
    mean loss over ``data`` (eval mode)."""
    loss_fn = nn.CrossEntropyLoss()
    done = 0
    for _ in range(epochs):
        model.train()
        for inputs, labels in loader:
            if interrupts.requested():
                break
            optimizer.zero_grad()
            loss_fn(model(inputs), labels).backward()
            optimizer.step()
        else:
            done += 1
        loss = _mean_loss(model, data)
        if interrupts.requested() or (target is not None and loss < target):
            break
    model.eval()
    return done, _mean_loss(model, data)


def _mean_loss(model: nn.Module, data: Batches) -> float:
    model.eval()
    with torch.no_grad():
        total = sum(float(nn.functional.cross_entropy(model(x), y, reduction="sum"))
                    for x, y in data)  # fmt: skip
    return total / sum(len(y) for _, y in data)


def _accuracy(model: nn.Module, data: Batches) -> float:
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(x).argmax(-1) == y).sum()) for x, y in data)
    return hits / sum(len(y) for _, y in data)


def _targets(out: Path, stem: str, force: bool) -> tuple[Path, Path]:
    make_folder(out)
    figure, numbers = out / f"{stem}.png", out / f"{stem}.json"
    for target in (figure, numbers):
        check_target(target, force=force)
    return figure, numbers


def _write(fig: Figure, figure: Path, numbers: Path, values: dict[str, Any], *, force: bool,
           wrote: Wrote) -> tuple[Path, ...]:  # fmt: skip
    """The numbers (JSON) and the figure, each atomically, even if Ctrl-C comes now."""
    written = []
    with interrupts.deferred():
        for path in (write_text(numbers, record_json(values), force=force),
                     save_figure(fig, figure, force=force)):  # fmt: skip
            written.append(path)
            if wrote is not None:
                wrote(path)
    return tuple(written)


def _depth(model: nn.Module) -> int:
    return sum(isinstance(m, nn.Linear) for m in model.modules())


def make_skip(
    out: Path,
    *,
    epochs: int = SKIP_EPOCHS,
    grid: int = 21,
    convexity: ConvexityOptions = SKIP_CONVEXITY,
    blocks: int | None = None,
    force: bool = False,
    log: Log = print,
    wrote: Wrote = None,
) -> PaperOutput:
    """Train ``gdscope.examples.skip``'s residual network and the same network without skip
    connections on the digits, map each one's loss on a filter-normalized random plane
    (``grid`` points per axis, -1…1) and ``|λ_min/λ_max|`` over it, and draw them side by side:
    ``out/skip.png`` and the numbers in ``out/skip.json``. Ctrl-C keeps what finished."""
    from gdscope.examples import digits, skip

    PlaneOptions(points=grid)  # refused now, not after the training
    figure, numbers = _targets(out, "skip", force)
    train = materialize(digits.make_dataset("train"))
    val = materialize(digits.make_dataset("val"))
    began = time.perf_counter()
    results: dict[str, LandscapeResult] = {}
    values: dict[str, Any] = {"data": "scikit-learn digits: 1,437 training images, 360 held "
                              "out", "threshold": NON_CONVEX, "epochs": epochs,
                              "convexity": convexity.to_dict(), "networks": {}}  # fmt: skip
    sizes = {} if blocks is None else {"blocks": blocks}
    with torch_threads(1), interrupts.polled():
        for with_skip in (True, False):
            if interrupts.requested():
                break
            model = skip.make_model(skip=with_skip, **sizes)
            started = time.perf_counter()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9,
                                        weight_decay=5e-4)  # fmt: skip
            done, loss = _train(model, digits.make_loader(64, shuffle=True), optimizer,
                                epochs=epochs, data=train)  # fmt: skip
            if done < epochs:
                break
            name = "residual" if with_skip else "plain"
            log(f"skip: {name} network ({_depth(model)} linear layers) trained {epochs} epochs "
                f"in {time.perf_counter() - started:.0f} s: loss {loss:.3g}, accuracy "
                f"{100 * _accuracy(model, train):.1f}% (train), {100 * _accuracy(model, val):.1f}% "
                f"(held out); mapping its plane and its convexity ({convexity.points}² "
                "Hessians)")  # fmt: skip
            started = time.perf_counter()

            def rows(done: int, total: int, name: str = name, started: float = started) -> None:
                if done and not done % convexity.points:  # a line per row of the map
                    log(f"skip: {name}: convexity map, {done} of {total} points "
                        f"({time.perf_counter() - started:.0f} s)")  # fmt: skip

            result = model_landscape(model, train, nn.CrossEntropyLoss(), directions="random",
                                     points=grid, convexity=convexity,
                                     convexity_progress=rows)  # fmt: skip
            found = result.convexity
            if found is None:
                break  # Ctrl-C during the surface
            results[name] = result
            values["networks"][name] = {
                "layers": _depth(model), "loss": loss, "train_accuracy": _accuracy(model, train),
                "val_accuracy": _accuracy(model, val), "non_convex": found.non_convex(),
                "convexity": found.to_dict(), "seconds": time.perf_counter() - started,
            }  # fmt: skip
            log(f"skip: {name}: {100 * found.non_convex():.0f}% of the plane has "
                f"|λ_min/λ_max| > {NON_CONVEX:g} ({found.done} points, {found.hvps} "
                f"Hessian-vector products, {found.seconds:.0f} s)")  # fmt: skip
    if not results:
        raise KeyboardInterrupt
    seconds = time.perf_counter() - began
    values["seconds"] = seconds
    log(f"skip: {seconds:.0f} s in all on this CPU")
    fig = _draw_skip(results, values)
    written = _write(fig, figure, numbers, values, force=force, wrote=wrote)
    cut = len(results) < 2 or any(r.convexity is not None and r.convexity.done
                                  < r.convexity.lowest.size for r in results.values())  # fmt: skip
    return PaperOutput(values, written, cut or interrupts.requested(), results)


def _draw_skip(results: dict[str, LandscapeResult], values: dict[str, Any]) -> Figure:
    """Each network's loss map above its convexity map, a column each, with the caption."""
    from gdscope.render.networks import plot_convexity, surface_landscape
    from gdscope.render.panels import plot_landscape

    fig = Figure(figsize=(5.6 * len(results), 10.4))
    for column, (name, result) in enumerate(results.items()):
        facts = values["networks"][name]
        ax = fig.add_subplot(2, len(results), 1 + column)
        labels = ("random direction 2", "random direction 1")
        plot_landscape(surface_landscape(result.surface, labels=labels), ax=ax, log=True,
                       kind="contour")  # fmt: skip
        ax.set_aspect("equal")
        kind = "with skip connections" if name == "residual" else "without skip connections"
        ax.set_title(f"{facts['layers']} layers, {kind}\ntrain accuracy "
                     f"{100 * facts['train_accuracy']:.1f}%, held out "
                     f"{100 * facts['val_accuracy']:.1f}%", fontsize=10)  # fmt: skip
        assert result.convexity is not None
        ax = fig.add_subplot(2, len(results), 1 + len(results) + column)
        plot_convexity(result.convexity, ax=ax, labels=labels)
        ax.set_aspect("equal")
    options = values["convexity"]
    caption = (f"Data: scikit-learn's digits (1,437 training images of 8×8 pixels; 360 held "
               f"out). Each network trained {values['epochs']} epochs (SGD, momentum 0.9). Top: "
               "loss on a plane of two filter-normalized random directions through the trained "
               f"weights. Bottom: |λ_min/λ_max| of the Hessian (over the first "
               f"{options['samples'] or 'all'} training images) at {options['points']}×"
               f"{options['points']} points (the white contour: {NON_CONVEX:g}, above which a "
               "point counts as markedly non-convex).")  # fmt: skip
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.text(0.02, 0.01, textwrap.fill(caption, 62 * len(results)), fontsize=8, va="bottom")
    return fig


def _along(model: nn.Module, data: Batches, **options: Any) -> ModelSurface:
    """The 1-D landscape of ``model`` (``model_landscape``'s keywords)."""
    return model_landscape(model, data, nn.CrossEntropyLoss(), **options).surface


def make_batch_size(
    out: Path,
    *,
    sizes: dict[str, tuple[int, float]] = BATCH_SIZES,
    target: float = TARGET_LOSS,
    max_epochs: int = MAX_EPOCHS,
    points: int = 41,
    force: bool = False,
    log: Log = print,
    wrote: Wrote = None,
) -> PaperOutput:
    """Train the digits MLP (``gdscope.examples.digits``) from the same start with a small and a
    large batch until each fits the training split to a mean loss below ``target``, then draw
    the line between the two solutions (loss and accuracy, training and held out; Goodfellow
    et al.'s interpolation as Keskar et al. drew it) and each solution's 1-D slice along a
    filter-normalized random direction (Li et al.), each with its top Hessian eigenvalue (over
    the training split): ``out/batch-size.png`` and ``out/batch-size.json``."""
    from gdscope.examples import digits
    from gdscope.nets.curvature import curvature

    if len(sizes) != 2:
        raise GdscopeError("the batch-size example compares two batch sizes")
    figure, numbers = _targets(out, "batch-size", force)
    train = materialize(digits.make_dataset("train"))
    val = materialize(digits.make_dataset("val"))
    began = time.perf_counter()
    models: dict[str, nn.Module] = {}
    values: dict[str, Any] = {"data": "scikit-learn digits: 1,437 training images, 360 held "
                              "out", "target_loss": target, "runs": {}}  # fmt: skip
    with torch_threads(1), interrupts.polled():
        for label, (batch, lr) in sizes.items():
            if interrupts.requested():
                break
            model = digits.make_model()
            started = time.perf_counter()
            optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
            epochs, loss = _train(model, digits.make_loader(batch, shuffle=True), optimizer,
                                  epochs=max_epochs, data=train, target=target)  # fmt: skip
            if interrupts.requested():
                break
            top = curvature(model, train, nn.CrossEntropyLoss(), top=1)
            models[label] = model
            values["runs"][label] = {
                "batch": batch, "lr": lr, "epochs": epochs, "loss": loss,
                "train_accuracy": _accuracy(model, train), "val_accuracy": _accuracy(model, val),
                "val_loss": _mean_loss(model, val), "top_eigenvalue": float(top.eigenvalues[0]),
                "converged": top.converged, "seconds": time.perf_counter() - started,
            }  # fmt: skip
            run = values["runs"][label]
            log(f"batch-size: {label} batch ({batch}, lr {lr:g}): {epochs} epochs in "
                f"{run['seconds']:.0f} s to loss {loss:.3g}; held-out accuracy "
                f"{100 * run['val_accuracy']:.1f}%; top Hessian eigenvalue "
                f"{run['top_eigenvalue']:.3g}")  # fmt: skip
        if len(models) < 2 or interrupts.requested():
            raise KeyboardInterrupt  # nothing to compare yet
        first, second = models.values()
        log("batch-size: the line between the two solutions and each one's slice")
        line = {name: _along(first, data, to=second, directions="line", points=points)
                for name, data in (("train", train), ("val", val))}  # fmt: skip
        slices = {label: {name: _along(model, data, directions="random", line=True,
                                       x=(-1.0, 1.0, points)) for name, data in
                          (("train", train), ("val", val))}
                  for label, model in models.items()}  # fmt: skip
    inside = (line["train"].xs >= 0) & (line["train"].xs <= 1)
    path = line["train"].loss[0][inside]
    barrier = float(path.max() - max(path[0], path[-1]))
    values["barrier"] = barrier
    values["line"] = {name: {"xs": s.xs.tolist(), "loss": s.loss[0].tolist(),
                             "accuracy": s.accuracy[0].tolist() if s.accuracy is not None
                             else None} for name, s in line.items()}  # fmt: skip
    values["seconds"] = time.perf_counter() - began
    log(f"batch-size: barrier on the line (highest training loss between them above the higher "
        f"end) {barrier:.3g}; {values['seconds']:.0f} s in all on this CPU")  # fmt: skip
    fig = _draw_batch_size(line, slices, values)
    written = _write(fig, figure, numbers, values, force=force, wrote=wrote)
    return PaperOutput(values, written, interrupts.requested())


def _plot_curves(ax: Axes, curves: dict[str, ModelSurface], *, marks: Sequence[tuple[float, str]]
                 = ()) -> Axes:  # fmt: skip
    """Loss (log, blue) and accuracy (red, a second axis), training solid and held out dashed."""
    twin = ax.twinx()
    for name, surface in curves.items():
        style = "-" if name == "train" else "--"
        word = "training" if name == "train" else "held out"
        ax.plot(surface.xs, surface.loss[0], style, color="tab:blue", label=f"loss, {word}")
        if surface.accuracy is not None:
            twin.plot(surface.xs, 100 * surface.accuracy[0], style, color="tab:red",
                      label=f"accuracy, {word}")  # fmt: skip
    ax.set_yscale("log")
    ax.set_ylabel("loss", color="tab:blue")
    twin.set_ylabel("accuracy (%)", color="tab:red")
    twin.set_ylim(0, 102)
    for x, label in marks:
        ax.axvline(x, color="0.4", linestyle=":", linewidth=1)
        ax.annotate(label, (x, 0), xycoords=("data", "axes fraction"), xytext=(3, 4),
                    textcoords="offset points", fontsize=8, color="0.3")  # fmt: skip
    return twin


def _draw_batch_size(line: dict[str, ModelSurface], slices: dict[str, dict[str, ModelSurface]],
                     values: dict[str, Any]) -> Figure:  # fmt: skip
    fig = Figure(figsize=(16, 5.4))
    runs = values["runs"]
    small, large = runs
    ax = fig.add_subplot(1, 3, 1)
    twin = _plot_curves(ax, line, marks=((0.0, f"{small} batch"), (1.0, f"{large} batch")))
    ax.set_xlabel(f"α: (1 − α)·{small} + α·{large}")
    ax.set_title("the line between the two solutions", fontsize=10)
    handles = [*ax.get_lines(), *twin.get_lines()]
    ax.legend(handles=[h for h in handles if not str(h.get_label()).startswith("_")],
              fontsize=7, loc="center")  # fmt: skip
    axes: list[Axes] = []
    for index, (label, curves) in enumerate(slices.items()):
        ax = fig.add_subplot(1, 3, 2 + index, sharey=axes[0] if axes else None)
        _plot_curves(ax, curves)
        axes.append(ax)
        run = runs[label]
        ax.set_xlabel("step along a filter-normalized random direction")
        ax.set_title(f"{label} batch ({run['batch']}): top Hessian eigenvalue "
                     f"{run['top_eigenvalue']:.3g}", fontsize=10)  # fmt: skip
    caption = (
        f"Data: scikit-learn's digits (1,437 training images, 360 held out); a 64-64-64-10 ReLU "
        f"MLP from the same start, SGD with momentum 0.9, trained until its training loss fell "
        f"below {values['target_loss']:g}: "
        + "; ".join(f"{label} batch {r['batch']} (lr {r['lr']:g}) in {r['epochs']} epochs, "
                    f"held-out accuracy {100 * r['val_accuracy']:.1f}%"
                    for label, r in runs.items())
        + f". Barrier on the line (training loss): {values['barrier']:.3g}."
    )  # fmt: skip
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.text(0.01, 0.01, textwrap.fill(caption, 200), fontsize=8, va="bottom")
    return fig
