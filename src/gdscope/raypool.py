"""Chunks of work as Ray tasks, on a local Ray or a cluster: the plumbing the landscape's
(``nets.distributed``) and the network studies' (``studies.netstudy``) Ray backends share.

Each chunk is one task; its result is handed to ``store`` with the chunk it belongs to, so it
lands in place whatever order the tasks finish in. A task whose worker or node dies is re-run:
Ray retries it ``max_retries`` times, then ``run_tasks`` resubmits it up to ``resubmits`` times
before giving up; an exception the function itself raised is raised here, as a local run
would (running it again would fail alike). Ctrl-C (``interrupts.requested``) cancels what is
pending; what was stored is kept.

The user's own code reaches the workers by value: the modules this process imported from
outside every installed location (``local_modules``: a ``--model mypkg.net:make_model``
imported from the current directory, a path the user added) are pickled with the objects that
use them, so a worker on another machine needs gdscope and the installed packages, not a copy
of the user's files. Their factories run here: the data is read, and the model built, on the
machine gdscope was started on.
"""

from __future__ import annotations

import importlib.machinery
import site
import sys
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import torch

from gdscope import interrupts
from gdscope.errors import GdscopeError, first_line, needs_extra

__all__ = ["RayPool", "local_modules", "on_worker"]

Chunk = TypeVar("Chunk")


_INSTALLED_KEYS = ("stdlib", "platstdlib", "purelib", "platlib")
"""``sysconfig``'s paths that hold installed code: a worker has its own copy of what is there."""
_NOT_SHIPPED = frozenset({"__main__", "__mp_main__", __name__.partition(".")[0]})
"""Never registered: ``__main__`` (cloudpickle sends it by value anyway) and gdscope itself,
whose functions the tasks run (it must be installed on the workers)."""


def _installed() -> tuple[Path, ...]:
    """The directories installed code is imported from: the standard library, site-packages
    (the environment's, the system's, the user's)."""
    paths = sysconfig.get_paths()
    places = {paths[key] for key in _INSTALLED_KEYS if key in paths}
    places.update(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        places.add(site.getusersitepackages())
    return tuple({Path(place).resolve() for place in places})


def _file(module: ModuleType) -> str | None:
    """The module's file (None for a built-in module or a namespace package). Read from its
    ``__dict__``, not with getattr: a lazy module's ``__getattr__`` may import things."""
    file = vars(module).get("__file__")
    return file if isinstance(file, str) else None


def _compiled(module: ModuleType) -> bool:
    file = _file(module)
    return file is not None and file.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def _origins(module: ModuleType) -> list[Path]:
    """Where a module's source was imported from: its file, or a namespace package's folders."""
    file = _file(module)
    if file is not None:
        return [Path(file)]
    return [
        Path(folder) for folder in vars(module).get("__path__") or () if isinstance(folder, str)
    ]


def local_modules() -> list[ModuleType]:
    """The top-level modules and packages this process imported from outside every installed
    location (the user's model, data and loss modules, and whatever of theirs those import):
    a Ray worker on another machine could not import them, so their code is sent by value.
    A package with compiled code is not one: that code cannot travel, so the package must be
    installed on the workers, and is imported there."""
    loaded = [(name, m) for name, m in list(sys.modules.items()) if isinstance(m, ModuleType)]
    compiled = {name.partition(".")[0] for name, module in loaded if _compiled(module)}
    installed = _installed()
    found = []
    for name, module in loaded:
        if "." in name or name in _NOT_SHIPPED or name in compiled:
            continue
        if module.__name__ != name:  # an alias: the module's own name is the one pickled
            continue
        origins = [origin.resolve() for origin in _origins(module)]
        if any(not any(o.is_relative_to(root) for root in installed) for o in origins):
            found.append(module)
    return found


def _ship_local_modules(ray: Any) -> None:
    """Have Ray's cloudpickle send ``local_modules`` by value from now on, in this process
    (idempotent; registered for good, so an object put now and a task submitted later agree)."""
    registered = ray.cloudpickle.list_registry_pickle_by_value()
    for module in local_modules():
        if module.__name__ not in registered:
            ray.cloudpickle.register_pickle_by_value(module)


def on_worker(threads: int, use_gpu: bool) -> torch.device:
    """Inside a task: the driver's thread count, and the worker's GPU when the task asked for
    one (``gpus_per_task``) and it has one, else its CPU."""
    torch.set_num_threads(threads)
    return torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class RayPool:
    """``address``: a Ray cluster (``"auto"``, ``"HEAD:6379"``, ``"ray://HEAD:10001"``), or None
    for Ray's own choice: ``RAY_ADDRESS`` if set, else a cluster started on this machine with
    ``ray start``, else a local Ray started here with ``num_cpus`` CPUs. ``gpus_per_task`` > 0
    puts each task on a GPU."""

    address: str | None = None
    num_cpus: int | None = None
    gpus_per_task: float = 0.0
    max_retries: int = 3
    resubmits: int = 2

    def ray(self) -> Any:
        """The ``ray`` module, initialized (a running Ray is reused), with this process's
        ``local_modules`` registered to travel by value (call it before ``put``)."""
        try:
            import ray
        except ImportError:
            raise needs_extra("backend=ray needs Ray", "ray", settings=["backend"]) from None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None:
                kwargs["num_cpus"] = self.num_cpus
            try:
                ray.init(address=self.address, **kwargs)
            except (ConnectionError, ValueError, RuntimeError) as error:
                where = f" at {self.address}" if self.address else ""  # else Ray's choice
                raise GdscopeError(f"cannot start or reach Ray{where}: {error}") from None
        _ship_local_modules(ray)
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
        ray = self.ray()  # again: a module imported since the last call is registered too
        # SPREAD: every node takes chunks, not the driver's until half its CPUs are busy (each
        # task reserves one CPU but trains on the driver's thread count)
        task = ray.remote(max_retries=self.max_retries, num_gpus=self.gpus_per_task,
                          scheduling_strategy="SPREAD")(function)  # fmt: skip

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
                    missing = _missing_import(ray, cause)
                    if missing is not None:
                        raise missing from None
                    raise cause from None
                if tries >= self.resubmits:
                    cancel()  # the other chunks would only be thrown away
                    raise GdscopeError(
                        f"a chunk failed {tries + 1} times on Ray: {error}"
                    ) from None
                pending[submit(chunk)] = (chunk, tries + 1)
                continue
            store(chunk, result)


def _missing_import(ray: Any, cause: Exception) -> GdscopeError | None:
    """The error for a task that failed on a worker lacking a package: its function's own
    ``ImportError``, or one raised while unpickling its arguments (a ``RaySystemError``)."""
    inner = cause.client_exc if isinstance(cause, ray.exceptions.RaySystemError) else cause
    if not isinstance(inner, ImportError):
        return None
    return GdscopeError(
        f"a Ray worker cannot import {inner.name or first_line(inner)!r}: install it on every "
        f"node (modules from outside site-packages travel with the tasks; installed ones, "
        f"gdscope included, must be there)"
    )
