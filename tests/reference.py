"""What several test files share. First, independent references: float64 re-derivations, a plain
torch evaluation loop and the article's printed log (no gdscope code inside, so they cannot agree
with a bug). Then the shared drivers and inputs, which do call gdscope: the CLI run in-process,
the small CNN data set, a small grid."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from gdscope.cli.main import main
from gdscope.examples import cnn
from gdscope.problem.maps import Grid


def loss_gradient_wrt_prediction(name: str, residual: np.ndarray, delta: float, beta: float):
    """d(mean loss)/d(prediction) for residual = prediction − target, from each loss's formula."""
    n = residual.size
    if name == "mse":
        return 2 * residual / n
    if name == "l1":
        return np.sign(residual) / n
    if name == "huber":
        return np.clip(residual, -delta, delta) / n
    if name == "smoothl1":
        if beta == 0:
            return np.sign(residual) / n
        return np.where(np.abs(residual) < beta, residual / beta, np.sign(residual)) / n
    raise ValueError(name)


def loss_value(name: str, residual: np.ndarray, delta: float, beta: float) -> float:
    a = np.abs(residual)
    if name == "mse":
        return float(np.mean(residual**2))
    if name == "l1":
        return float(np.mean(a))
    if name == "huber":
        return float(np.mean(np.where(a < delta, 0.5 * residual**2, delta * (a - 0.5 * delta))))
    if beta == 0:
        return float(np.mean(a))
    return float(np.mean(np.where(a < beta, 0.5 * residual**2 / beta, a - 0.5 * beta)))


def sgd_path(
    x,
    y,
    *,
    loss,
    delta=1.0,
    beta=1.0,
    lr,
    momentum=0.0,
    dampening=0.0,
    weight_decay=0.0,
    nesterov=False,
    maximize=False,
    epochs,
    start,
):
    """Full-batch SGD written from the torch.optim.SGD documentation's algorithm, in float64."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    p = np.array(start, dtype=np.float64)  # (w, b)
    buf = None
    path, losses = [p.copy()], []
    for _ in range(epochs):
        residual = p[0] * x + p[1] - y
        losses.append(loss_value(loss, residual, delta, beta))
        dpred = loss_gradient_wrt_prediction(loss, residual, delta, beta)
        g = np.array([np.sum(dpred * x), np.sum(dpred)])
        if maximize:
            g = -g
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        path.append(p.copy())
    residual = p[0] * x + p[1] - y
    losses.append(loss_value(loss, residual, delta, beta))
    return np.array(path), np.array(losses)


def direct_loss(model, loader, loss_fn):
    """The plain way: model in eval mode, batch by batch, mean over samples."""
    model.eval()
    total = seen = correct = 0
    with torch.no_grad():
        for x, y in loader:
            out = model(x)
            total += float(loss_fn(out, y)) * len(y)
            correct += int((out.argmax(1) == y).sum())
            seen += len(y)
    return total / seen, correct / seen


# The lines the article prints (epochs 0-9 and 97-99).
ARTICLE_LOG = {
    0: "epoch 0, loss 53.078269958496094",
    1: "epoch 1, loss 34.7295036315918",
    2: "epoch 2, loss 22.891206741333008",
    3: "epoch 3, loss 15.226042747497559",
    4: "epoch 4, loss 10.242652893066406",
    5: "epoch 5, loss 6.987757682800293",
    6: "epoch 6, loss 4.85075569152832",
    7: "epoch 7, loss 3.4395809173583984",
    8: "epoch 8, loss 2.501774787902832",
    9: "epoch 9, loss 1.8742430210113525",
    97: "epoch 97, loss 0.4994412660598755",
    98: "epoch 98, loss 0.4994412362575531",
    99: "epoch 99, loss 0.4994412660598755",
}


# Shared drivers and inputs: these do call gdscope.


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def small_cnn_data(n=256, batch=64):
    data = cnn.make_dataset(n, seed=1)
    return torch.utils.data.DataLoader(data, batch_size=batch)


SMALL = Grid((-5, 8), (-5, 8), 27, 27)


def reference_surface(path, xs, ys=None, *, loss=None, acc=None, dir_file="net.h5") -> None:
    """A surface file as the reference's ``plot_surface.py`` writes it: ``dir_file``,
    ``xcoordinates`` (and ``ycoordinates``), then ``train_loss``/``train_acc`` created with
    shape ``(len(x), len(y))`` full of −1 and filled through ``ravel()`` in the order of
    ``meshgrid(x, y)`` flattened; ``loss``/``acc`` give each point's value from its (x, y)."""
    import h5py

    shape = (len(xs),) if ys is None else (len(xs), len(ys))
    losses, accuracies = -np.ones(shape), -np.ones(shape)
    if ys is None:
        points = np.c_[xs]
    else:
        mesh_x, mesh_y = np.meshgrid(xs, ys)
        points = np.c_[mesh_x.ravel(), mesh_y.ravel()]
    for index, point in enumerate(points):
        if loss is not None:
            losses.ravel()[index] = loss(*point)
            accuracies.ravel()[index] = acc(*point) if acc is not None else 50.0
    with h5py.File(path, "w") as f:
        f["dir_file"] = dir_file
        f["xcoordinates"] = xs
        if ys is not None:
            f["ycoordinates"] = ys
        f["train_loss"] = losses
        f["train_acc"] = accuracies


def assert_same_recording(recorded, expected, *, atol: float = 1e-6) -> None:
    """Two recordings of the same SGD steps (a framework's callback, a hand-written loop)."""
    assert recorded.layout == expected.layout
    assert recorded.optimizer == expected.optimizer == "SGD"
    np.testing.assert_array_equal(recorded.steps, expected.steps)
    np.testing.assert_allclose(np.asarray(recorded.snapshots), expected.snapshots, atol=atol,
                               rtol=0 if atol == 0 else 1e-7)  # fmt: skip
    np.testing.assert_allclose(recorded.losses, expected.losses, rtol=1e-5, equal_nan=True)


def docs_block(page: str, containing: str) -> str:
    """The Python block of ``docs/PAGE`` that contains ``containing``."""
    text = (Path(__file__).parents[1] / "docs" / page).read_text()
    return next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if containing in b)


def record_mlp(folder: Path, *, lr: float = 0.1, batches: int = 5) -> None:
    """A recording (``gdscope.Recorder(path=folder)``) of the example MLP trained by plain
    ``torch.optim.SGD`` for ``batches`` steps of 300 samples: ``batches + 1`` snapshots."""
    from torch import nn

    from gdscope import Recorder
    from gdscope.examples.mlp import make_loader, make_model

    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    rec = Recorder(model, path=folder, optimizer=optimizer)
    for i, (x, y) in enumerate(make_loader(batch_size=300)):
        if i == batches:
            break
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        rec.step(loss)
