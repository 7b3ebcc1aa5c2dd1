"""Chunks of work as Ray tasks, on a local Ray or a cluster: the plumbing the landscape's
(``nets.distributed``) and the network studies' (``studies.netstudy``) Ray backends share.

Each chunk is one task; its result is handed to ``store`` with the chunk it belongs to, so it
lands in place whatever order the tasks finish in. A task whose worker dies is re-run: Ray
retries it ``max_retries`` times, then ``run_tasks`` resubmits it up to ``resubmits`` times
before giving up; an exception the function itself raised is raised here, as a local run
would (running it again would fail alike). Ctrl-C (``interrupts.requested``) cancels what is
pending; what was stored is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from gdscope import interrupts
from gdscope.errors import GdscopeError, needs_extra

__all__ = ["RayPool", "on_worker"]

Chunk = TypeVar("Chunk")


def on_worker(threads: int, use_gpu: bool) -> torch.device:
    """Inside a task: the driver's thread count, and the worker's GPU when the task asked for
    one (``gpus_per_task``) and it has one, else its CPU."""
    torch.set_num_threads(threads)
    return torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class RayPool:
    """``address``: a Ray cluster (``"auto"``, ``"ray://head:10001"``), or None for a local Ray
    started here with ``num_cpus`` CPUs. ``gpus_per_task`` > 0 puts each task on a GPU."""

    address: str | None = None
    num_cpus: int | None = None
    gpus_per_task: float = 0.0
    max_retries: int = 3
    resubmits: int = 2

    def ray(self) -> Any:
        """The ``ray`` module, initialized (a running Ray is reused)."""
        try:
            import ray
        except ImportError:
            raise needs_extra("--backend ray needs Ray", "ray") from None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None:
                kwargs["num_cpus"] = self.num_cpus
            try:
                ray.init(address=self.address, **kwargs)
            except (ConnectionError, ValueError, RuntimeError) as error:
                raise GdscopeError(f"cannot reach Ray at {self.address}: {error}") from None
        return ray

    def worker_args(self) -> tuple[int, bool]:
        """What a task passes to ``on_worker``: this process's threads, whether to use a GPU."""
        return torch.get_num_threads(), self.gpus_per_task > 0

    def run_tasks(
        self,
        function: Callable[..., Any],
        chunks: Sequence[Chunk],
        arguments: Callable[[Chunk], tuple[Any, ...]],
        store: Callable[[Chunk, Any], None],
        *,
        stop: Callable[[], bool] = interrupts.requested,
    ) -> None:
        """``function(*arguments(chunk))`` as a Ray task per chunk; each result goes to
        ``store(chunk, result)`` as it arrives. Put large shared inputs in Ray's object store
        once (``self.ray().put``) and pass the references in ``arguments``."""
        ray = self.ray()
        task = ray.remote(max_retries=self.max_retries, num_gpus=self.gpus_per_task)(function)

        def submit(chunk: Chunk) -> Any:
            return task.remote(*arguments(chunk))

        pending = {submit(chunk): (chunk, 0) for chunk in chunks}

        def cancel() -> None:
            for ref in pending:
                ray.cancel(ref)

        while pending:
            if stop():  # Ctrl-C: the chunks stored so far are kept
                cancel()
                return
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            if not ready:
                continue
            ref = ready[0]
            chunk, tries = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as error:
                cause = getattr(error, "cause", None)
                if isinstance(error, ray.exceptions.RayTaskError) and isinstance(cause, Exception):
                    cancel()
                    raise cause from None
                if tries >= self.resubmits:
                    cancel()  # the other chunks would only be thrown away
                    raise GdscopeError(
                        f"a chunk failed {tries + 1} times on Ray: {error}"
                    ) from None
                pending[submit(chunk)] = (chunk, tries + 1)
                continue
            store(chunk, result)
