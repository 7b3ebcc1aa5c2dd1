"""A Lightning ``Callback`` that records the path during ``trainer.fit``::

    from gdscope.integrations.lightning import RecorderCallback

    trainer = lightning.Trainer(callbacks=[RecorderCallback("run/path", submodule="model")])
    trainer.fit(module, loader)          # then: gdscope landscape --path run/path ...

It takes snapshot 0 when training starts and one after every optimizer step (every ``every``-th,
with the mean loss of the batches that step accumulated; an optimizer step is counted by
``trainer.global_step``, so ``accumulate_grad_batches`` is handled), on the global rank 0 only.
After each validation run (not the sanity check) it records the validation loss the module
logged (``validation_metric``, default ``"val_loss"``; not logged: nothing recorded) at the
current step.

With ``landscape_every=N`` (and ``landscape_data``/``landscape_loss``, or the sharpness's) it
draws a small loss landscape around the current weights every ``N`` optimizer steps
(``Capture.landscape``) and hands it to every logger: ``log_image`` where the logger has it
(W&B), ``add_figure`` on TensorBoard's writer, else a PNG in the logger's ``log_dir`` (or its
``save_dir``; the trainer's ``default_root_dir`` without either, or without a logger), named by
its step.
Needs ``lightning`` (``pip install 'gdscope[lightning]'``).
"""

from __future__ import annotations

from typing import Any

from gdscope.integrations.capture import LANDSCAPE_TAG, Capture, missing, save_landscape
from gdscope.nets.recorder import RecordedPath

try:
    from lightning.pytorch import Callback
    from lightning.pytorch.loggers import TensorBoardLogger
except ImportError:
    raise missing("lightning", "lightning") from None

__all__ = ["RecorderCallback"]


class RecorderCallback(Callback):
    """Records the ``LightningModule`` (or its ``submodule``, e.g. ``"model"``, so that the
    names match the bare network ``gdscope landscape --model`` builds) through
    ``gdscope.Recorder``; ``path`` and every other keyword go to ``Recorder`` as they are
    (``every``, ``force``, …) but the ``landscape_*`` ones (``landscape_every``,
    ``landscape_points`` (default 11), ``landscape_data``, ``landscape_loss``: see
    ``Capture.landscape``). ``result()`` is the recording."""

    def __init__(self, path: Any = None, *, submodule: str | None = None,
                 log_sharpness: bool = False, validation_metric: str = "val_loss",
                 **options: Any) -> None:  # fmt: skip
        super().__init__()
        self.capture = Capture(submodule, {"path": path, **options}, log_sharpness=log_sharpness)
        self.validation_metric = validation_metric
        """The name the module logs its validation loss under (``self.log(name, loss)``)."""
        self.log_sharpness = log_sharpness
        """Also hand each sharpness measured (``sharpness_every``), its threshold and the
        learning rate to the trainer's loggers (TensorBoard, CSV, …) at its step, as
        ``gdscope/sharpness``, ``gdscope/threshold`` and ``gdscope/lr``."""
        self._stepped = 0

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero:
            self._stepped = trainer.global_step
            self.capture.start(pl_module, trainer.optimizers[0] if trainer.optimizers else None)
            self._log(trainer)

    def _log(self, trainer: Any) -> None:
        """The sharpness measured since the last call, to every logger the trainer has."""
        measured = self.capture.measured() if self.log_sharpness else None
        if measured is None:
            return
        step, metrics = measured
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not trainer.is_global_zero:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and pl_module.automatic_optimization:
            loss = loss * trainer.accumulate_grad_batches  # Lightning divided it for backward
        self.capture.loss(loss)
        if trainer.global_step != self._stepped:
            self._stepped = trainer.global_step
            self.capture.step()
            self._log(trainer)
            self._landscape(trainer)

    def _landscape(self, trainer: Any) -> None:
        """The landscape snapshot due now, if any, to every logger the trainer has."""
        snapshot = self.capture.landscape()
        if snapshot is None:
            return
        step, figure = snapshot
        if not trainer.loggers:
            save_landscape(figure, trainer.default_root_dir, step)
        for logger in trainer.loggers:
            if callable(getattr(logger, "log_image", None)):
                logger.log_image(key=LANDSCAPE_TAG, images=[figure], step=step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure(LANDSCAPE_TAG, figure, global_step=step, close=False)
            else:
                folder = (getattr(logger, "log_dir", None) or logger.save_dir
                          or trainer.default_root_dir)  # fmt: skip
                save_landscape(figure, folder, step)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            self.capture.validation(trainer.callback_metrics.get(self.validation_metric))

    def result(self) -> RecordedPath:
        return self.capture.result()
