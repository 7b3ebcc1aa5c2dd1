"""Spreading a landscape's chunks over Ray workers (a local Ray or a cluster).

Each chunk is a Ray task that evaluates its grid points on the worker's own device (its GPU
when it has one and ``gpus_per_task`` asks for it, else its CPU). Results are stored by their
grid indices, so they land in order whatever order they finish in. A task whose worker dies is
re-run: Ray retries it ``max_retries`` times, then this backend resubmits it up to
``resubmits`` times before giving up.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gdscope import interrupts
from gdscope.errors import GdscopeError
from gdscope.nets.plane import EVALUATORS, Batches, ChunkWork, LossFn, Method, Store
from gdscope.nets.recorder import ParamLayout

__all__ = ["RayBackend"]


def _evaluate_chunk(
    model: nn.Module,
    batches: Batches,
    loss_fn: LossFn,
    method: Method,
    layout: ParamLayout,
    vectors: Tensor,
    threads: int,
    use_gpu: bool,
) -> tuple[Tensor, Tensor | None]:
    """One Ray task: the chunk's loss and accuracy (or None), on the worker's own device."""
    torch.set_num_threads(threads)
    device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    batches = [(x.to(device), y.to(device)) for x, y in batches]
    evaluate = EVALUATORS[method]
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

    def run(self, work: ChunkWork, chunks: Sequence[np.ndarray], store: Store) -> None:
        """Each chunk a Ray task (the ``Backend`` protocol); the work's data is put in Ray's
        object store once. Runs contiguous: the channels-last layout is the local loop's."""
        ray = self._ray()
        task = ray.remote(max_retries=self.max_retries, num_gpus=self.gpus_per_task)(
            _evaluate_chunk
        )
        model_ref = ray.put(copy.deepcopy(work.data.model).cpu())
        batches_ref = ray.put([(x.cpu(), y.cpu()) for x, y in work.data.batches])
        loss_ref = ray.put(work.loss_fn)
        threads = torch.get_num_threads()
        use_gpu = self.gpus_per_task > 0

        def submit(indices: np.ndarray) -> Any:
            vectors = work.grid.vectors(indices).cpu()
            return task.remote(model_ref, batches_ref, loss_ref, work.method, work.layout,
                               vectors, threads, use_gpu)  # fmt: skip

        pending = {submit(indices): (indices, 0) for indices in chunks}
        while pending:
            if interrupts.requested():  # Ctrl-C: the chunks stored so far are kept
                for ref in pending:
                    ray.cancel(ref)
                return
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            if not ready:
                continue
            ref = ready[0]
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
