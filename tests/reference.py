"""Independent float64 re-derivations used as references in tests (no gdscope code inside)."""

from __future__ import annotations

import numpy as np


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
