"""A Hugging Face ``TrainerCallback`` that records the path during ``Trainer.train()``::

    from gdscope.integrations.huggingface import RecorderCallback

    trainer = Trainer(model=model, args=args, train_dataset=data,
                      callbacks=[RecorderCallback("run/path")])
    trainer.train()                       # then: gdscope landscape --path run/path ...

It takes snapshot 0 when training begins (``on_train_begin``) and one after every optimizer step
(``on_step_end``, which the ``Trainer`` calls once per step, after gradient accumulation), on
the main process only. The loss recorded with a step is the mean of the ``loss`` the model
returned in training mode over that step's micro-batches (a forward hook; their sum when the
``Trainer`` passed ``num_items_in_batch``, as the model then divided by the step's count; NaN
when the model returns none, e.g. with a custom ``compute_loss``). Each evaluation's loss
(``on_evaluate``'s ``metrics["eval_loss"]``, or another ``validation_metric``; absent: nothing
recorded) is recorded as a validation loss at the current step. Needs ``transformers`` and
``accelerate`` (``pip install 'gdscope[hf]'``).

To hand the sharpness to the ``Trainer``'s own reporting (``report_to``: TensorBoard, W&B, …)
the callback needs the ``Trainer``: the ``Trainer`` calls its callbacks in order, the
reporting ones before yours, and passes them no way to log; only ``Trainer.log`` reaches them
all (and ``state.log_history``)::

    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.add_callback(RecorderCallback("run/path", trainer=trainer, log_sharpness=True,
                                          sharpness_every=10, sharpness_data=batches,
                                          sharpness_loss=loss))

With ``landscape_every=N`` (and ``landscape_data``/``landscape_loss``, or the sharpness's) it
draws a small loss landscape around the current weights every ``N`` optimizer steps
(``Capture.landscape``): given the ``trainer``, to the writer of its TensorBoard reporting
(``report_to=["tensorboard"]``) with ``add_figure``; otherwise as a PNG in ``output_dir``,
named by its step.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.utils.hooks import RemovableHandle

from gdscope.errors import GdscopeError
from gdscope.integrations.capture import LANDSCAPE_TAG, Capture, missing, save_landscape
from gdscope.nets.recorder import RecordedPath

try:
    from transformers import TrainerCallback
    from transformers.integrations import TensorBoardCallback
except ImportError:
    raise missing("transformers", "hf") from None

__all__ = ["RecorderCallback"]


def _model_loss(output: Any) -> Any:
    """The ``loss`` in a model's output (a ``ModelOutput`` or a dict), or None."""
    if isinstance(output, dict):  # ModelOutput is an OrderedDict
        return output.get("loss")
    return getattr(output, "loss", None)


class RecorderCallback(TrainerCallback):
    """Records the ``Trainer``'s model (or its ``submodule``) through ``gdscope.Recorder``;
    ``path`` and every other keyword go to ``Recorder`` as they are (``every``, ``force``, …)
    but the ``landscape_*`` ones (``landscape_every``, ``landscape_points`` (default 11),
    ``landscape_data``, ``landscape_loss``: see ``Capture.landscape``). ``result()`` is the
    recording. ``trainer``: the ``Trainer`` this callback is added to
    (``trainer.add_callback``), which ``log_sharpness`` needs."""

    def __init__(self, path: Any = None, *, submodule: str | None = None, trainer: Any = None,
                 log_sharpness: bool = False, validation_metric: str = "eval_loss",
                 **options: Any) -> None:  # fmt: skip
        self.capture = Capture(submodule, {"path": path, **options}, log_sharpness=log_sharpness)
        if log_sharpness and trainer is None:
            raise GdscopeError(
                "log_sharpness needs the Trainer, the one way to its reporting: "
                "trainer.add_callback(RecorderCallback(..., trainer=trainer, log_sharpness=True))"
            )
        self.trainer, self.log_sharpness = trainer, log_sharpness
        """Also hand each sharpness measured (``sharpness_every``), its threshold and the
        learning rate to ``trainer.log`` at its step, as ``gdscope/sharpness``,
        ``gdscope/threshold`` and ``gdscope/lr``: every reporting integration gets them."""
        self.validation_metric = validation_metric
        """The key of the evaluation's metrics holding the validation loss."""
        self._hook: RemovableHandle | None = None
        self._shares = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        model: nn.Module = kwargs["model"]
        self.capture.start(model, kwargs.get("optimizer"))

        def keep_loss(module: nn.Module, inputs: Any, named: dict[str, Any], output: Any) -> None:
            if module.training:  # not evaluation passes
                self.capture.loss(_model_loss(output))
                # Given the step's count of labels, the model divides by it: a micro-batch's
                # loss is its share of the step's mean.
                self._shares = named.get("num_items_in_batch") is not None

        self._hook = model.register_forward_hook(keep_loss, with_kwargs=True)
        self._log()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.capture.step(shares=self._shares)
            self._log()
            self._landscape(args)

    def _landscape(self, args: Any) -> None:
        """The landscape snapshot due now, if any, to the TensorBoard reporting's writer, else
        to ``output_dir`` as a PNG."""
        snapshot = self.capture.landscape()
        if snapshot is None:
            return
        step, figure = snapshot
        callbacks = self.trainer.callback_handler.callbacks if self.trainer is not None else []
        writers = [c.tb_writer for c in callbacks
                   if isinstance(c, TensorBoardCallback) and c.tb_writer is not None]  # fmt: skip
        for writer in writers:
            writer.add_figure(LANDSCAPE_TAG, figure, global_step=step, close=False)
        if not writers:
            save_landscape(figure, args.output_dir, step)

    def _log(self) -> None:
        """The sharpness measured since the last call, through ``Trainer.log`` (which logs at
        the ``Trainer``'s step: the measurement's, since it is measured as the step ends)."""
        measured = self.capture.measured() if self.log_sharpness else None
        if measured is None:
            return
        # Logging clears control.should_log, which would cancel the Trainer's own log of this
        # step (its loss) about to follow: put it back as it was.
        due = self.trainer.control.should_log
        self.trainer.log(dict(measured[1]))
        self.trainer.control.should_log = due

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None,
                    **kwargs: Any) -> None:  # fmt: skip
        if state.is_world_process_zero and metrics:
            self.capture.validation(metrics.get(self.validation_metric))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def result(self) -> RecordedPath:
        return self.capture.result()
