"""Spreading a landscape's chunks over Ray workers (a local Ray or a cluster).

Each chunk is a Ray task that evaluates its grid points on the worker's own device (its GPU
when it has one and ``gpus_per_task`` asks for it, else its CPU). Results are stored by their
grid indices, so they land in order whatever order they finish in; retries, resubmits and
Ctrl-C are ``gdscope.raypool``'s.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor, nn

from gdscope.engines.runner import Remote, run_chunks
from gdscope.modules import ParamLayout
from gdscope.nets.plane import EVALUATORS, Batches, ChunkWork, LossFn, Method, Store
from gdscope.raypool import RayPool, on_worker

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
    device = on_worker(threads, use_gpu)
    model = model.to(device).eval()
    batches = [(x.to(device), y.to(device)) for x, y in batches]
    evaluate = EVALUATORS[method]
    loss, accuracy = evaluate(model, batches, loss_fn, vectors.to(device), layout=layout)
    return loss.cpu(), (accuracy.cpu() if accuracy is not None else None)


class RayBackend(RayPool):
    """The landscape's ``Backend`` on Ray (``RayPool``'s settings: ``address``, ``num_cpus``,
    ``gpus_per_task``, ``max_retries``, ``resubmits``)."""

    def run(self, work: ChunkWork, chunks: Sequence[np.ndarray], store: Store) -> None:
        """Each chunk a Ray task (the ``Backend`` protocol); the work's data is put in Ray's
        object store once. Runs contiguous: the channels-last layout is the local loop's."""
        ray = self.ray()
        model_ref = ray.put(copy.deepcopy(work.data.model).cpu())
        batches_ref = ray.put([(x.cpu(), y.cpu()) for x, y in work.data.batches])
        loss_ref = ray.put(work.loss_fn)
        worker = self.worker_args()

        def arguments(indices: np.ndarray) -> tuple[Any, ...]:
            vectors = work.grid.vectors(indices).cpu()
            return (model_ref, batches_ref, loss_ref, work.method, work.layout, vectors,
                    *worker)  # fmt: skip

        def stored(indices: np.ndarray, result: tuple[Tensor, Tensor | None]) -> None:
            store(indices, *result)

        run_chunks(chunks, stored, remote=Remote(self, _evaluate_chunk, arguments))
