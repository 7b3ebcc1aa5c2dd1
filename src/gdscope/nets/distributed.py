"""Spreading a landscape's chunks over Ray workers (a local Ray or a cluster).

Each chunk is a Ray task that evaluates its grid points on the worker's own device (its GPU
when it has one and ``gpus_per_task`` asks for it, else its CPU). Results are stored by their
grid indices, so they land in order whatever order they finish in. A task whose worker dies is
re-run: Ray retries it ``max_retries`` times, then this backend resubmits it up to
``resubmits`` times before giving up.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gdscope.errors import GdscopeError

__all__ = ["RayBackend"]


def _evaluate_chunk(
    model: nn.Module,
    batches: list[tuple[Tensor, Tensor]],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    strategy: str,
    layout: Any,
    vectors: Tensor,
    threads: int,
    use_gpu: bool,
    crash_marker: str | None,
) -> tuple[Tensor, Tensor | None]:
    from gdscope.nets.plane import evaluate_plane_loop, evaluate_vectors

    if crash_marker is not None and not os.path.exists(crash_marker):
        # Fault injection for tests: the first task to get here kills its worker process.
        Path(crash_marker).touch()
        os._exit(1)
    torch.set_num_threads(threads)
    device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    batches = [(x.to(device), y.to(device)) for x, y in batches]
    evaluate = evaluate_vectors if strategy == "vmap" else evaluate_plane_loop
    loss, accuracy = evaluate(model, batches, loss_fn, vectors.to(device), layout=layout)
    return loss.cpu(), (accuracy.cpu() if accuracy is not None else None)


@dataclass
class RayBackend:
    """``address``: a Ray cluster (``"auto"``, ``"ray://head:10001"``), or None for a local Ray
    started here with ``num_cpus`` CPUs. ``gpus_per_task`` > 0 puts each task on a GPU."""

    address: str | None = None
    num_cpus: int | None = None
    gpus_per_task: float = 0.0
    max_retries: int = 3
    resubmits: int = 2
    crash_marker: str | None = None
    """Testing only: a path; the first task that finds it missing creates it and crashes."""

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise GdscopeError("--backend ray needs Ray: pip install 'gdscope[ray]'") from None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None:
                kwargs["num_cpus"] = self.num_cpus
            try:
                ray.init(address=self.address, **kwargs)
            except (ConnectionError, ValueError, RuntimeError) as error:
                raise GdscopeError(f"cannot reach Ray at {self.address}: {error}") from None
        return ray

    def run(
        self,
        model: nn.Module,
        batches: list[tuple[Tensor, Tensor]],
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        strategy: str,
        layout: Any,
        chunks: list[np.ndarray],
        vectors_of: Callable[[np.ndarray], Tensor],
        store: Callable[[np.ndarray, Tensor, Tensor | None], None],
    ) -> None:
        ray = self._ray()
        task = ray.remote(max_retries=self.max_retries, num_gpus=self.gpus_per_task)(
            _evaluate_chunk
        )
        model_ref = ray.put(copy.deepcopy(model).cpu())
        batches_ref = ray.put([(x.cpu(), y.cpu()) for x, y in batches])
        loss_ref = ray.put(loss_fn)
        threads = torch.get_num_threads()
        use_gpu = self.gpus_per_task > 0

        def submit(indices: np.ndarray) -> Any:
            vectors = vectors_of(indices).cpu()
            return task.remote(model_ref, batches_ref, loss_ref, strategy, layout, vectors,
                               threads, use_gpu, self.crash_marker)  # fmt: skip

        pending = {submit(indices): (indices, 0) for indices in chunks}
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            indices, tries = pending.pop(ref)
            try:
                loss, accuracy = ray.get(ref)
            except ray.exceptions.RayError as error:
                if tries >= self.resubmits:
                    raise GdscopeError(
                        f"a chunk failed {tries + 1} times on Ray: {error}"
                    ) from None
                pending[submit(indices)] = (indices, tries + 1)
                continue
            store(indices, loss, accuracy)
