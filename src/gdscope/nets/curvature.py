"""The curvature of a model's loss: Hessian eigenvalues, trace and spectral density.

Everything is built on Hessian-vector products, never on the Hessian itself: ``H·v`` is the
derivative of ``gradient·v`` (double backward through ``torch.func.functional_call``; many
vectors at once with ``is_grads_batched``, which vmaps the backward pass; the gradient's graph
is kept between products when the data is one batch), of the
mean loss over the data (each batch weighted by its size, as the landscapes average it), at the
model's current trainable parameters (``ParamLayout``).

* **Top-k eigenvalues** (algebraically largest, counted with multiplicity; the top one is the
  *sharpness*): Lanczos with full reorthogonalization, single-vector for k = 1, block Lanczos
  for more, started again wider where a cluster of Ritz values may hide further copies
  (``top_eigenpairs``). It stops when every one of the k Ritz pairs has a residual
  ``‖H·u − θ·u‖ ≤ tol·|θ|``; for a symmetric matrix that guarantees an eigenvalue of ``H`` within
  ``tol·|θ|`` of each ``θ`` (and in practice within about ``(tol·θ)²/gap``).
* **Trace**: Hutchinson's estimator ``mean(zᵀ·H·z)`` over Rademacher vectors ``z``, with its
  standard error ``std/√m`` (the vectors go through ``torch.vmap`` a chunk at a time).
* **Spectral density**: stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; PyHessian's
  ``density``): each run's Lanczos tridiagonal matrix gives nodes (its eigenvalues) and weights
  (the squared first components of its eigenvectors), a quadrature of the spectral measure.

The model runs in eval mode unless ``train=True``: then BatchNorm normalizes with the batch's
statistics (without touching its running ones) and every product sees the same dropout mask, so
the operator is one fixed symmetric matrix.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gdscope import interrupts
from gdscope.errors import GdscopeError, first_line
from gdscope.modules import ParamLayout, left_as_it_was
from gdscope.nets.plane import first_samples, materialize

__all__ = [
    "LANCZOS_STEPS",
    "TOL",
    "CurvatureOptions",
    "Density",
    "Extremes",
    "HessianOperator",
    "Spectrum",
    "block_lanczos",
    "curvature",
    "extreme_eigenvalues",
    "lanczos",
    "top_eigenpairs",
    "wasserstein",
]

TOL = 1e-3
"""The relative tolerance of an eigenvalue unless asked otherwise (everywhere: the CLI, the
sharpness probe, Hessian directions)."""
LANCZOS_STEPS = 100
"""The most Lanczos steps (Hessian-vector products) one eigenvalue computation takes."""

LossFn = Callable[[Tensor, Tensor], Tensor]
Progress = Callable[[int, int], None]
Batches = list[tuple[Tensor, Tensor]]


@contextlib.contextmanager
def _batch_statistics(model: nn.Module) -> Iterator[None]:
    """Within: BatchNorm layers in train mode normalize with the batch's statistics and leave
    their running ones alone (an in-place update cannot go through ``torch.func``)."""
    saved = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            saved.append((module, module.running_mean, module.running_var,
                          module.num_batches_tracked))  # fmt: skip
            module.running_mean = module.running_var = module.num_batches_tracked = None
    try:
        yield
    finally:
        for module, mean, var, count in saved:
            module.running_mean, module.running_var, module.num_batches_tracked = mean, var, count


def _nodes(root: Any) -> Iterator[Any]:
    """Every node of an autograd graph, from ``root`` (a ``grad_fn``) down."""
    seen, stack = set(), [root]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        yield node
        stack.extend(child for child, _ in node.next_functions)


_ERRORS = ("torch::autograd::Error", "torch::autograd::DelayedError")
"""The nodes autograd puts where a backward cannot be differentiated again."""


@contextlib.contextmanager
def _watched(loss: Tensor) -> Iterator[list[str]]:
    """Within: the custom ``autograd.Function`` nodes of the loss's graph whose backward, given
    a gradient that requires grad, returns a result that cannot be differentiated again
    (once-differentiable: an error node; or detached from it, and not zero) are named in the
    list yielded, in the order their backward ran."""
    named: list[str] = []

    def watch(node: Any) -> Callable[[tuple[Any, ...], tuple[Any, ...]], None]:
        def hook(results: tuple[Any, ...], given: tuple[Any, ...]) -> None:
            if not any(isinstance(g, Tensor) and g.requires_grad for g in given):
                return
            for result in results:
                if not isinstance(result, Tensor):
                    continue
                lost = not result.requires_grad and bool(result.any())
                if lost or (result.grad_fn is not None and result.grad_fn.name() in _ERRORS):
                    named.append(type(node).__name__)
                    return

        return hook

    handles = [node.register_hook(watch(node)) for node in _nodes(loss.grad_fn)
               if isinstance(node, torch.autograd.function.BackwardCFunction)]  # fmt: skip
    try:
        yield named
    finally:
        for handle in handles:
            handle.remove()


def _once_differentiable(gradient: Tensor, loss: Tensor, named: list[str]) -> str | None:
    """The op(s) whose backward cannot be differentiated again: the custom ``autograd.Function``
    nodes ``_watched`` named, else, if the gradient's graph holds an error node, every custom
    one of the loss's graph (or a built-in op's)."""
    if named:
        return ", ".join(dict.fromkeys(named))
    if not any(node.name() in _ERRORS for node in _nodes(gradient.grad_fn)):
        return None
    custom = [type(node).__name__ for node in _nodes(loss.grad_fn)
              if isinstance(node, torch.autograd.function.BackwardCFunction)]  # fmt: skip
    return ", ".join(dict.fromkeys(custom)) or "an op of the loss"


class HessianOperator:
    """``v ↦ D·H·D·v``: the Hessian of the mean loss over ``batches`` at the model's parameters
    (``D`` = ``diag(scale)`` if given, a preconditioner's ``P^{-1/2}``; else the identity).

    ``point``: the parameters (laid out as ``layout``) where the Hessian is taken, if not the
    model's own (a point of a landscape's plane); the model itself is left unchanged.
    ``hvps`` counts products (a batch of ``m`` vectors counts ``m``). With ``keep`` (default:
    when the data is one batch) each batch's gradient graph is built once and kept, so a product
    costs one backward pass; else it is rebuilt for every product (memory stays one batch's).
    """

    def __init__(
        self,
        model: nn.Module,
        batches: Batches,
        loss_fn: LossFn,
        *,
        layout: ParamLayout | None = None,
        train: bool = False,
        scale: Tensor | None = None,
        seed: int = 0,
        keep: bool | None = None,
        point: Tensor | None = None,
    ) -> None:
        self.layout = layout or ParamLayout.of(model)
        self.model, self.batches, self.loss_fn, self.train = model, batches, loss_fn, train
        own = self.layout.vector(model)
        self.point = own if point is None else point.to(own)
        self.scale = None if scale is None else scale.to(self.point)
        self.seed = seed
        self.hvps = 0
        self._seen = sum(len(targets) for _, targets in batches)
        self.keep = keep if keep is not None else len(batches) == 1
        self._graphs: dict[int, Callable[[Tensor], Tensor]] = {}

    @property
    def size(self) -> int:
        return self.layout.size

    @contextlib.contextmanager
    def _mode(self) -> Iterator[None]:
        """The model in the asked mode, with a fixed dropout mask, restored afterwards."""
        devices = [self.point.device] if self.point.device.type == "cuda" else []
        with left_as_it_was(self.model):
            self.model.train(self.train)
            with (torch.random.fork_rng(devices=devices), _batch_statistics(self.model)
                  if self.train else contextlib.nullcontext()):  # fmt: skip
                yield

    def _pullback(self, index: int) -> Callable[[Tensor], Tensor]:
        """``V ↦ V·H_b`` (rows) for batch ``index``: its gradient's graph, built with
        ``create_graph`` once (kept with ``keep``), differentiated again for each product."""
        from torch.func import functional_call

        if index in self._graphs:
            return self._graphs[index]
        inputs, targets = self.batches[index]
        with self._mode(), torch.enable_grad():
            torch.manual_seed(self.seed + index)  # the same dropout mask every time
            named = {**dict(self.model.named_parameters()), **dict(self.model.named_buffers())}
            fixed = {n: t.detach() for n, t in named.items() if n not in self.layout.names}
            point = self.point.detach().requires_grad_(True)
            params = {**fixed, **self.layout.unflatten(point)}
            try:
                loss = self.loss_fn(functional_call(self.model, params, (inputs,)), targets)
            except (RuntimeError, NotImplementedError, ValueError, TypeError) as error:
                raise GdscopeError(f"evaluating the loss failed: {first_line(error)}") from None
            if not isinstance(loss, Tensor) or loss.numel() != 1 or not loss.requires_grad:
                raise GdscopeError("the loss must be a scalar tensor that depends "
                                   "differentiably on the parameters")  # fmt: skip
            # Seeded with a 1 that requires grad, every backward sees a gradient that does: a
            # once-differentiable backward then leaves its error node in the graph (and one
            # that detaches its result is seen to) even where its own input gradient would be
            # a constant (a Function applied last, in the loss).
            seed = torch.ones((), dtype=loss.dtype, device=loss.device, requires_grad=True)
            with _watched(loss) as lost:
                (gradient,) = torch.autograd.grad(loss.reshape(()), point, seed,
                                                  create_graph=True)  # fmt: skip
        if culprit := _once_differentiable(gradient, loss, lost):
            raise GdscopeError(f"the loss is not twice differentiable: {culprit} has no second "
                               "derivative (its backward is once-differentiable or detaches "
                               "its result)")  # fmt: skip

        def pullback(vectors: Tensor) -> Tensor:
            batched = len(vectors) > 1
            (product,) = torch.autograd.grad(
                gradient, point, vectors if batched else vectors[0], retain_graph=True,
                is_grads_batched=batched, allow_unused=True,
            )  # fmt: skip
            if product is None:  # the gradient does not depend on the point: H = 0 (linear)
                return torch.zeros_like(vectors)
            return product.reshape(vectors.shape)

        if self.keep:
            self._graphs[index] = pullback
        return pullback

    def _apply(self, vectors: Tensor) -> Tensor:
        """``H`` times each row of ``vectors`` ``(m, N)`` (vmapped when ``m > 1``)."""
        total = torch.zeros_like(vectors)
        for index, (_, targets) in enumerate(self.batches):
            pullback = self._pullback(index)
            try:
                products = pullback(vectors)
            except (RuntimeError, NotImplementedError) as error:
                message = first_line(error)
                if "vmap" in message.lower() and len(vectors) > 1:  # batching failed
                    products = torch.cat([pullback(v[None]) for v in vectors])
                else:
                    raise GdscopeError(
                        f"the loss is not twice differentiable here: {message}"
                    ) from None
            total += products * (len(targets) / self._seen)
        return total

    def matmat(self, vectors: Tensor) -> Tensor:
        """``D·H·D`` times each row of ``vectors`` ``(m, N)``; checked finite."""
        scaled = vectors if self.scale is None else vectors * self.scale
        products = self._apply(scaled.to(self.point))
        if self.scale is not None:
            products = products * self.scale
        self.hvps += len(vectors)
        if not bool(torch.isfinite(products).all()):
            raise GdscopeError(
                "the curvature is not finite at these weights (a Hessian-vector product "
                "overflowed or is NaN)"
            )
        return products

    def __call__(self, vector: Tensor) -> Tensor:
        return self.matmat(vector[None])[0]


@dataclass(frozen=True, eq=False)
class LanczosRun:
    """``steps`` steps of Lanczos: the tridiagonal ``alphas``/``betas`` (``betas[j]`` couples
    ``j`` and ``j + 1``; the last one is the residual's norm), and the basis ``(steps, N)``."""

    alphas: np.ndarray
    betas: np.ndarray
    basis: Tensor
    stopped: bool = False
    """True if Ctrl-C cut it short."""

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """The Ritz values (ascending) and the tridiagonal matrix's eigenvectors (columns)."""
        steps = len(self.alphas)
        tri = np.diag(self.alphas) + np.diag(self.betas[: steps - 1], 1)
        tri += np.diag(self.betas[: steps - 1], -1)
        values, vectors = np.linalg.eigh(tri)
        return values, vectors


def lanczos(
    operator: Callable[[Tensor], Tensor],
    start: Tensor,
    *,
    steps: int,
    done: Callable[[LanczosRun], bool] | None = None,
    progress: Callable[[], None] | None = None,
) -> LanczosRun:
    """Lanczos from ``start`` with full reorthogonalization (twice, against the whole basis:
    it keeps ``H``'s repeated eigenvalues from coming back as ghost copies), for at most
    ``steps`` steps, or until ``done(run)`` says so, the Krylov space is exhausted, or Ctrl-C."""
    basis = torch.empty(steps, start.numel(), dtype=start.dtype, device=start.device)
    alphas: list[float] = []
    betas: list[float] = []
    q = start / start.norm()
    stopped = False
    for j in range(steps):
        if interrupts.requested():
            stopped = True
            break
        basis[j] = q
        w = operator(q)
        alpha = float(w @ q)
        for _ in range(2):
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = float(w.norm())
        alphas.append(alpha)
        betas.append(beta)
        if progress is not None:
            progress()
        run = LanczosRun(np.array(alphas), np.array(betas), basis[: j + 1])
        scale = max(abs(a) for a in alphas) or 1.0
        if beta <= 1e-12 * scale or (done is not None and done(run)):
            return run
        q = w / beta
    count = len(alphas)
    return LanczosRun(np.array(alphas), np.array(betas), basis[:count], stopped)


@dataclass(frozen=True)
class Extremes:
    """The algebraically smallest and largest eigenvalues of ``H`` (``lowest`` ≤ ``highest``),
    the residual norms of their Ritz pairs, whether both met the tolerance, and the products
    taken."""

    lowest: float
    highest: float
    residuals: tuple[float, float]
    converged: bool
    hvps: int


def extreme_eigenvalues(
    operator: Callable[[Tensor], Tensor],
    start: Tensor,
    *,
    tol: float = TOL,
    steps: int = LANCZOS_STEPS,
) -> Extremes:
    """Both ends of ``H``'s spectrum from one Lanczos run from ``start``: its Krylov space
    converges to the two extreme eigenvalues at once, so ``λ_min`` needs no second run on
    ``-H`` nor a shift. It stops when both extreme Ritz pairs have residuals at most
    ``tol·max(|θ_min|, |θ_max|)``: relative to the spectral radius, not to ``|θ_min|`` (which
    may be near zero): what a ratio ``λ_min/λ_max`` needs. Each value is then within its
    residual of an eigenvalue of ``H``; as for any Krylov method, an end the start vector
    (almost) misses is not proven absent. At most ``steps`` products (and no more than the
    dimension)."""

    def residuals(run: LanczosRun) -> tuple[np.ndarray, np.ndarray]:
        values, vectors = run.ritz()
        ends = vectors[-1, [0, -1]]  # the last components of the extreme Ritz vectors
        return values[[0, -1]], np.abs(ends) * run.betas[-1]

    def met(run: LanczosRun) -> bool:
        ends, errors = residuals(run)
        return len(run.alphas) >= 2 and bool((errors <= tol * np.abs(ends).max()).all())

    run = lanczos(operator, start, steps=min(steps, start.numel()), done=met)
    if not len(run.alphas):  # Ctrl-C before a single product
        return Extremes(math.nan, math.nan, (math.nan, math.nan), False, 0)
    ends, errors = residuals(run)
    converged = bool((errors <= tol * np.abs(ends).max()).all())
    return Extremes(float(ends[0]), float(ends[1]), (float(errors[0]), float(errors[1])),
                    converged and not run.stopped, len(run.alphas))  # fmt: skip


def _random(size: int, generator: torch.Generator, like: Tensor, *, rademacher: bool) -> Tensor:
    if rademacher:
        bits = torch.randint(0, 2, (size,), generator=generator, dtype=torch.int8)
        return (bits.to(like) * 2 - 1).to(like.device)
    return torch.randn(size, generator=generator, dtype=torch.float64).to(like)


BREAKDOWN = 1e-12
"""A new Lanczos direction shorter than this (relative to the largest projected entry so far)
is taken for zero: the Krylov space found an invariant subspace."""
SAME = 1e-6
"""Converged Ritz values within ``tol`` of each other (relative), or within ``SAME`` times the
spectrum's scale, may be one eigenvalue repeated: a block finds a cluster that tight as it
finds copies, and single vectors miss its members as they miss copies."""


def _orthonormal(
    rows: Tensor, against: list[Tensor], room: int, generator: torch.Generator, scale: float
) -> tuple[Tensor, np.ndarray]:
    """``rows`` ``(m, N)`` as ``couplingᵀ·Q`` plus what ``against`` spans: ``Q`` ``(k, N)``
    orthonormal rows orthogonal to ``against``, ``coupling`` ``(k, m)`` (Gram–Schmidt twice,
    row by row). A row (numerically) in the span of the others adds a random direction
    orthogonal to all of them instead, coupled to nothing (so the Krylov space goes on past an
    invariant subspace), or, with no ``room`` left in the space, nothing."""
    kept: list[Tensor] = []
    weights = np.zeros((len(rows), len(rows)))
    for index in range(len(rows)):
        row = rows[index]
        for _ in range(2):
            for other in against:
                row = row - other.T @ (other @ row)
            for i, q in enumerate(kept):
                dot = q @ row
                weights[index, i] += float(dot)
                row = row - dot * q
        norm = float(row.norm())
        if norm > BREAKDOWN * scale:
            weights[index, len(kept)] = norm
        elif len(kept) < room:
            row = _random(rows.shape[1], generator, rows, rademacher=False)
            for _ in range(2):
                for other in [*against, *(q[None] for q in kept)]:
                    row = row - other.T @ (other @ row)
            norm = float(row.norm())
        else:
            continue
        kept.append(row / norm)
    if not kept:
        return rows[:0], np.zeros((0, len(rows)))
    return torch.stack(kept), weights[:, : len(kept)].T.copy()


@dataclass(frozen=True, eq=False)
class BlockRun:
    """Block Lanczos after some steps: the basis ``(dims, N)`` (orthonormal rows), ``matrix`` =
    ``basis·H·basisᵀ`` (block tridiagonal), and the next block: ``H·basisᵀ = basisᵀ·matrix +
    followingᵀ·coupling·E`` where ``E`` picks the last ``last`` rows; ``hvps`` products."""

    matrix: np.ndarray
    basis: Tensor
    coupling: np.ndarray
    following: Tensor
    last: int
    hvps: int
    stopped: bool = False
    """True if Ctrl-C cut it short."""

    def ritz(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``count`` largest Ritz values (descending), their vectors in the basis
        (columns), and their residual norms ``‖H·u − θ·u‖ = ‖coupling·s_last‖``."""
        values, vectors = np.linalg.eigh(self.matrix)
        order = np.argsort(values)[::-1][:count]
        small = vectors[:, order]
        tail = self.coupling @ small[len(small) - self.last :]
        return values[order], small, np.linalg.norm(tail, axis=0)

    def pairs(self, count: int) -> tuple[np.ndarray, Tensor, Tensor]:
        """The ``count`` largest Ritz values, their unit vectors ``(count, N)`` and residual
        vectors ``H·u − θ·u`` ``(count, N)``."""
        values, small, _ = self.ritz(count)
        weights = torch.from_numpy(small.T.copy()).to(self.basis)
        tail = self.coupling @ small[len(small) - self.last :]
        residual = torch.from_numpy(tail.T.copy()).to(self.basis) @ self.following
        return values, weights @ self.basis, residual


def block_lanczos(
    matmat: Callable[[Tensor], Tensor],
    start: Tensor,
    *,
    steps: int,
    room: int,
    deflate: Tensor | None = None,
    done: Callable[[BlockRun], bool] | None = None,
    progress: Callable[[], None] | None = None,
    generator: torch.Generator | None = None,
) -> BlockRun:
    """Block Lanczos on ``P·H·P`` (``P`` projects out the rows of ``deflate``; ``H`` if None)
    from the rows of ``start`` ``(b, N)``, with full reorthogonalization (twice, against the
    whole basis and ``deflate``), for at most ``steps`` products (a step of ``b`` rows costs
    ``b``) and ``room`` basis rows, or until ``done(run)`` says so, or Ctrl-C. With ``b = 1``
    this is ``lanczos``. A block finds an eigenvalue repeated up to ``b`` times (the Krylov
    space holds ``b`` start vectors' parts in its eigenspace); single-vector Lanczos finds one
    copy, however many there are."""
    generator = generator or torch.Generator().manual_seed(0)
    against = [] if deflate is None or not len(deflate) else [deflate]
    projector = against[0] if against else None
    block, _ = _orthonormal(start, against, room, generator, 1.0)
    width = min(room, len(start) * max(1, steps // max(1, len(start))))
    basis = torch.empty(max(width, 1), start.shape[1], dtype=start.dtype, device=start.device)
    matrix = np.zeros((len(basis), len(basis)))
    dims = hvps = 0
    scale = 0.0
    run = BlockRun(matrix[:0, :0], basis[:0], np.zeros((0, 0)), basis[:0], 0, 0)
    while len(block):
        if interrupts.requested():
            return BlockRun(run.matrix, run.basis, run.coupling, run.following, run.last, hvps,
                            stopped=True)  # fmt: skip
        size = len(block)
        if hvps + size > steps or dims + size > len(basis):
            break
        basis[dims : dims + size] = block
        products = matmat(block)
        hvps += size
        if projector is not None:
            products = products - (products @ projector.T) @ projector
        diagonal = (block @ products.T).double().cpu().numpy()
        diagonal = (diagonal + diagonal.T) / 2
        matrix[dims : dims + size, dims : dims + size] = diagonal
        scale = max(scale, float(np.abs(diagonal).max()))
        dims += size
        if progress is not None:
            for _ in range(size):
                progress()
        following, coupling = _orthonormal(products, [basis[:dims], *against], room - dims,
                                           generator, scale or 1.0)  # fmt: skip
        run = BlockRun(matrix[:dims, :dims], basis[:dims], coupling, following, size, hvps)
        if done is not None and done(run):
            return run
        width = len(following)
        if dims + width <= len(matrix):
            matrix[dims : dims + width, dims - size : dims] = coupling
            matrix[dims - size : dims, dims : dims + width] = coupling.T
        block = following
    return run


def _clusters(values: np.ndarray, tol: float, floor: float) -> list[range]:
    """The runs of consecutive (descending) ``values`` each within ``tol`` (relative) or
    ``floor`` of the next: what may be one eigenvalue repeated."""
    groups, begin = [], 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i - 1] - values[i] > max(
            tol * max(abs(values[i - 1]), abs(values[i])), floor
        ):
            groups.append(range(begin, i))
            begin = i
    return groups


def _suspect(
    values: np.ndarray, met: np.ndarray, need: int, block: int, tol: float, floor: float
) -> range | None:
    """The highest cluster of the ``need`` top Ritz values that may be missing members: one
    above the last value with as many members as the block (more may hide unseen, above the
    last value), once it and the value after it converged (so it cannot grow); or the one that
    holds the last value, as large as the block and spread wider than ``tol`` (its unseen
    members could change the last value by more than ``tol``). None if there is none (or it
    is too early to say)."""
    for group in _clusters(values, tol, floor):
        if not met[: group.stop + 1].all():
            return None
        if len(group) < block:
            continue
        if group.stop < need:
            return group
        spread = values[group.start] - values[group.stop - 1]
        return group if spread > tol * abs(values[group.start]) else None
    return None


def _verdict(
    run: BlockRun, need: int, block: int, tol: float, scale: float
) -> tuple[np.ndarray, np.ndarray, range | None]:
    """The run's top ``need`` Ritz values, which of them met ``tol``, and its suspect cluster
    (``_suspect``; ``scale``: the spectrum's size so far)."""
    values, _, residuals = run.ritz(need)
    met = residuals <= tol * np.maximum(np.abs(values), 1e-30)
    scale = max(scale, float(np.abs(values).max(initial=0.0)))
    return values, met, _suspect(values, met, need, block, tol, SAME * scale)


def top_eigenpairs(
    operator: HessianOperator,
    top: int,
    *,
    tol: float = TOL,
    steps: int = LANCZOS_STEPS,
    seed: int = 0,
    start: Tensor | None = None,
    progress: Callable[[], None] | None = None,
) -> tuple[np.ndarray, Tensor, np.ndarray, bool, bool]:
    """The ``top`` algebraically largest eigenvalues, counted with multiplicity (descending),
    unit eigenvectors ``(top, N)``, residual norms ``‖H·u − λ·u‖``, whether ``converged``, and
    whether Ctrl-C stopped it. At most ``steps`` products. Lanczos starts from ``start`` if
    given (a last eigenvector: it converges in fewer steps), else at random.

    Top-1 is single-vector Lanczos; more is block Lanczos with a block of 2. A block of ``b``
    finds an eigenvalue repeated up to ``b`` times (single-vector Lanczos finds one copy, however
    many there are). Ritz values within ``tol`` of each other (relative; or ``SAME`` of the
    spectrum's scale) form a cluster: maybe one eigenvalue repeated. A cluster above the last
    value needed that fills the block may be missing copies: what was found down to it is kept
    and Lanczos starts again, on ``H`` with the kept vectors projected out, from a random block
    orthogonal to them and one wider than the cluster, for the rest. (The cluster holding the
    last value is refound with a wider block only if it fills the block and spreads wider than
    ``tol``.) The runs' pairs are combined by Rayleigh–Ritz; the terms between runs come from
    the residuals, with no product.

    ``converged`` guarantees: (1) every residual is at most ``tol·|λ|``, so each value lies
    within its residual of an eigenvalue of ``H``, and together they lie within
    ``√Σ residual²`` of ``top`` eigenvalues of ``H`` counted with multiplicity (Kahan's
    theorem: two values never rest on one eigenvector); (2) no cluster was left that could hide
    a further copy (every cluster above the last value is smaller than its run's block). What
    no Krylov method proves is that its random start did not miss an eigenvalue outright (its
    part in the start being vanishingly small); top-1 has always assumed that.
    """
    size = operator.size
    if top > size:
        raise GdscopeError(f"top {top} asks for more eigenvalues than the model's {size} "
                           "trainable parameters", settings=["top"])  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    noise = _random(size, generator, operator.point, rademacher=False)
    if start is not None and bool(start.norm() > 0):
        # A little noise, so the Krylov space is not stuck in one eigenvector's direction.
        first = start.to(noise) / start.norm() + 0.05 * noise / noise.norm()
    else:
        first = noise
    width = min(top, 2)
    found = torch.empty(0, size, dtype=noise.dtype, device=noise.device)  # kept, orthonormal
    projected = np.zeros((0, 0))  # found·H·foundᵀ
    residual = found  # H·foundᵀ − foundᵀ·projected, as rows (orthogonal to found)
    left, converged = steps, False
    while True:
        need, scale = top - len(found), float(np.abs(np.diag(projected)).max(initial=0.0))
        rows = [first] if not len(found) else []
        rows += [_random(size, generator, noise, rademacher=False)
                 for _ in range(width - len(rows))]  # fmt: skip

        def enough(run: BlockRun, need: int = need, block: int = width, scale: float = scale
                   ) -> bool:  # fmt: skip
            values, met, suspect = _verdict(run, need, block, tol, scale)
            return suspect is not None or (len(values) == need and bool(met.all()))

        run = block_lanczos(operator.matmat, torch.stack(rows), steps=left,
                            room=size - len(found), deflate=found, done=enough,
                            progress=progress, generator=generator)  # fmt: skip
        left -= run.hvps
        values, met, suspect = _verdict(run, need, width, tol, scale)
        last = suspect is not None and suspect.stop >= need  # the cluster of the last value
        final = suspect is None or run.stopped or left <= 0
        keep = len(values) if final or suspect is None else suspect.start if last else suspect.stop
        values, vectors, errors = run.pairs(keep)
        # Rows found earlier see H·v only through their residuals: found·H·v = residual·v.
        mutual = (residual @ vectors.T).double().cpu().numpy()
        projected = np.block([[projected, mutual], [mutual.T, np.diag(values)]])
        residual = torch.cat([residual - (residual @ vectors.T) @ vectors, errors])
        found = torch.cat([found, vectors])
        if final or suspect is None:
            converged = suspect is None and len(values) == need and bool(met.all())
            break
        # One wider than the cluster; above the last value no wider than what is left (a
        # cluster that then holds the last value is complete enough if it is tight).
        width = len(suspect) + 1 if last else max(1, min(len(suspect) + 1, top - len(found)))
    if not len(found):
        return np.zeros(0), found, np.zeros(0), False, True
    values, rotation = np.linalg.eigh(projected)
    order = np.argsort(values)[::-1]
    turn = torch.from_numpy(rotation[:, order].T.copy()).to(found)
    vectors, residual = turn @ found, turn @ residual
    norms = residual.norm(dim=1).double().cpu().numpy()
    values = values[order]
    met = norms <= tol * np.maximum(np.abs(values), 1e-30)
    return values, vectors, norms, converged and bool(met.all()), run.stopped


@dataclass(frozen=True, eq=False)
class Density:
    """Stochastic Lanczos quadrature: ``nodes`` and ``weights`` ``(runs, steps)``; each run's
    weights sum to 1, and the spectral density is their average (see ``smoothed``)."""

    nodes: np.ndarray
    weights: np.ndarray

    def smoothed(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        """The density on ``grid`` with each node spread into a Gaussian of width ``sigma``."""
        diff = (grid[:, None, None] - self.nodes[None]) / sigma
        kernel = np.exp(-0.5 * diff**2) / (sigma * math.sqrt(2 * math.pi))
        return (kernel * self.weights[None]).sum(axis=(1, 2)) / len(self.nodes)

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": self.nodes.tolist(), "weights": self.weights.tolist()}


def wasserstein(
    nodes: np.ndarray, weights: np.ndarray, others: np.ndarray, other_weights: np.ndarray
) -> float:
    """The 1-Wasserstein distance between two discrete measures on the line (∫|F − G|)."""
    points = np.concatenate([nodes, others])
    order = np.argsort(points)
    mass = np.concatenate([weights / weights.sum(), -other_weights / other_weights.sum()])[order]
    gaps = np.diff(points[order])
    return float(np.sum(np.abs(np.cumsum(mass)[:-1]) * gaps))


@dataclass(frozen=True)
class CurvatureOptions:
    """What to compute and how precisely.

    ``top`` eigenvalues to relative tolerance ``tol`` in at most ``steps`` Lanczos steps;
    ``trace`` with ``trace_samples`` Rademacher vectors (``trace_chunk`` at a time);
    ``density`` with ``density_runs`` runs of ``density_steps`` steps; on the first ``samples``
    samples of the data (None: all of it); in train mode if ``train``; ``seed`` fixes every
    random vector."""

    top: int = 1
    tol: float = TOL
    steps: int = LANCZOS_STEPS
    trace: bool = False
    trace_samples: int = 100
    trace_chunk: int = 10
    density: bool = False
    density_runs: int = 1
    density_steps: int = 80
    samples: int | None = None
    train: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("top", "steps", "trace_samples", "trace_chunk", "density_runs",
                     "density_steps"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GdscopeError(f"{name} must be a positive integer, got {value!r}")
        if self.trace_samples < 2:
            raise GdscopeError("trace_samples must be at least 2 (for a standard error)")
        if not 0 < self.tol < 1:
            raise GdscopeError(f"tol must be in (0, 1), got {self.tol!r}")
        if self.samples is not None and self.samples < 1:
            raise GdscopeError(f"samples must be a positive integer, got {self.samples!r}")

    def total_hvps(self) -> int:
        """The most products this asks for (what a progress bar counts to)."""
        return (self.steps + self.trace * self.trace_samples
                + self.density * self.density_runs * self.density_steps)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class Spectrum:
    """What ``curvature`` found. ``eigenvalues`` descending with their ``residuals`` (each is
    within its residual of an eigenvalue of ``H``); ``converged``: all met the tolerance;
    ``trace ± trace_se`` over ``trace_samples`` vectors; ``density``; ``hvps`` products in
    ``seconds``; ``interrupted``: Ctrl-C stopped it (what finished is here, the rest is None)."""

    eigenvalues: np.ndarray
    eigenvectors: Tensor
    residuals: np.ndarray
    converged: bool
    parameters: int
    samples: int
    trace: float | None = None
    trace_se: float | None = None
    trace_samples: int = 0
    density: Density | None = None
    hvps: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    options: CurvatureOptions = field(default_factory=CurvatureOptions)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the eigenvectors, as JSON-ready values (``--save``)."""
        return {
            "eigenvalues": self.eigenvalues.tolist(), "residuals": self.residuals.tolist(),
            "converged": self.converged, "parameters": self.parameters,
            "samples": self.samples, "trace": self.trace, "trace_se": self.trace_se,
            "trace_samples": self.trace_samples,
            "density": self.density.to_dict() if self.density is not None else None,
            "hvps": self.hvps, "seconds": self.seconds, "interrupted": self.interrupted,
            "options": self.options.to_dict(),
        }  # fmt: skip


def _hutchinson(
    operator: HessianOperator,
    options: CurvatureOptions,
    generator: torch.Generator,
    tick: Callable[[int], None],
) -> list[float]:
    """``zᵀ·H·z`` for Rademacher ``z``, a chunk at a time, until enough or Ctrl-C."""
    values: list[float] = []
    while len(values) < options.trace_samples and not interrupts.requested():
        count = min(options.trace_chunk, options.trace_samples - len(values))
        z = torch.stack([_random(operator.size, generator, operator.point, rademacher=True)
                         for _ in range(count)])  # fmt: skip
        values += (z * operator.matmat(z)).sum(1).tolist()
        tick(count)
    return values


def _slq(
    operator: HessianOperator,
    options: CurvatureOptions,
    generator: torch.Generator,
    tick: Callable[[int], None],
) -> Density | None:
    """Stochastic Lanczos quadrature: the finished runs (None if none finished)."""
    nodes, weights = [], []
    steps = min(options.density_steps, operator.size)
    for _ in range(options.density_runs):
        start = _random(operator.size, generator, operator.point, rademacher=False)
        run = lanczos(operator, start, steps=steps, progress=lambda: tick(1))
        if run.stopped:
            break
        values, vectors = run.ritz()
        node, weight = np.zeros(steps), np.zeros(steps)  # padded with zero weights
        node[: len(values)], weight[: len(values)] = values, vectors[0] ** 2
        nodes.append(node)
        weights.append(weight)
    if not nodes:
        return None
    return Density(np.array(nodes), np.array(weights))


def curvature(
    model: nn.Module,
    batches: Batches | Any,
    loss_fn: LossFn,
    *,
    options: CurvatureOptions | None = None,
    progress: Progress | None = None,
    **fields: Any,
) -> Spectrum:
    """The curvature of ``loss_fn`` over ``batches`` (a list of ``(inputs, targets)``, or any
    data ``nets.plane.materialize`` takes: a ``DataLoader``, a ``Dataset``, one pair) at
    ``model``'s weights: ``options`` (or its fields as keywords) say what. ``progress(done,
    total)`` counts Hessian-vector products. Under Ctrl-C (``interrupts``) it stops and returns
    what finished."""
    options = CurvatureOptions(**{**(options or CurvatureOptions()).to_dict(), **fields})
    data = first_samples(materialize(batches), options.samples)  # a list of pairs stays as it is
    if not data:
        raise GdscopeError("the data has no samples")
    operator = HessianOperator(model, data, loss_fn, train=options.train, seed=options.seed)
    total = options.total_hvps()
    began = time.perf_counter()
    done = [0]

    def tick(count: int = 1) -> None:
        done[0] += count
        if progress is not None:
            progress(min(done[0], total), total)

    if progress is not None:
        progress(0, total)
    generator = torch.Generator().manual_seed(options.seed + 1)
    with interrupts.polled():
        values, vectors, residuals, converged, stopped = top_eigenpairs(
            operator, options.top, tol=options.tol, steps=options.steps, seed=options.seed,
            progress=tick,
        )  # fmt: skip
        done[0] = options.steps  # the rest of the budget is not needed
        trace = se = None
        quadratic: list[float] = []
        if options.trace and not stopped:
            quadratic = _hutchinson(operator, options, generator, tick)
            if len(quadratic) >= 2:
                trace = float(np.mean(quadratic))
                se = float(np.std(quadratic, ddof=1) / math.sqrt(len(quadratic)))
        density = None
        if options.density and not interrupts.requested():
            density = _slq(operator, options, generator, tick)
    return Spectrum(
        values, vectors, residuals, converged, operator.size,
        sum(len(t) for _, t in data), trace, se, len(quadratic) if trace is not None else 0,
        density, operator.hvps, time.perf_counter() - began,
        stopped or interrupts.requested(), options,
    )  # fmt: skip
