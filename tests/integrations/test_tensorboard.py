"""The callbacks' sharpness and landscape snapshots in real TensorBoard event files, read back
with TensorBoard's own reader (a dev dependency: without it these skip, and fail under CI)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import require

require("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def events(folder: Path) -> EventAccumulator:
    """Every scalar and image of the one event file under ``folder``."""
    (file,) = folder.rglob("events.out.tfevents*")
    accumulator = EventAccumulator(str(file), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def test_lightning_tensorboard_logger_gets_the_sharpness_and_the_landscapes(tmp_path):
    from gdscope.integrations.lightning import RecorderCallback

    from .test_lightning import Dropping, loader, pl

    probe = [next(iter(loader()))]
    callback = RecorderCallback(every=2, landscape_every=3, log_sharpness=True,
                                sharpness_every=2, sharpness_data=probe,
                                sharpness_loss=nn.CrossEntropyLoss())  # fmt: skip
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=7,
                         logger=pl.loggers.TensorBoardLogger(tmp_path), enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[callback])  # fmt: skip
    trainer.fit(Dropping(), loader())
    read = events(tmp_path)
    assert [e.step for e in read.Images("gdscope/landscape")] == [3, 6]
    trace = callback.result().sharpness
    assert trace is not None
    sharpness = read.Scalars("gdscope/sharpness")
    assert [e.step for e in sharpness] == trace.steps.tolist() == [0, 2, 4, 6]
    assert [e.value for e in sharpness] == pytest.approx(trace.values[:, 0].tolist(), rel=1e-6)
    assert not list(tmp_path.rglob("*.png"))  # TensorBoard took them: no files beside


def test_hugging_face_tensorboard_reporting_gets_the_sharpness_and_the_landscapes(tmp_path):
    import transformers

    from gdscope.integrations.huggingface import RecorderCallback

    from .test_huggingface import BATCH, LR, InOrder, Sentences, make_model, sharpness_options

    model = make_model(attention="eager")
    model.accepts_loss_kwargs = False
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), report_to=["tensorboard"], use_cpu=True, max_steps=5,
        per_device_train_batch_size=BATCH, lr_scheduler_type="constant", max_grad_norm=0.0,
        save_strategy="no", logging_strategy="steps", logging_steps=1,
        dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    trainer = InOrder(model=model, args=args, train_dataset=Sentences(),
                      optimizers=(optimizer, None))  # fmt: skip
    callback = RecorderCallback(trainer=trainer, log_sharpness=True, landscape_every=2,
                                **sharpness_options())  # fmt: skip
    trainer.add_callback(callback)
    trainer.train()
    read = events(tmp_path)
    assert [e.step for e in read.Images("gdscope/landscape")] == [2, 4]
    trace = callback.result().sharpness
    assert trace is not None
    sharpness = read.Scalars("train/gdscope/sharpness")  # the Trainer prefixes "train/"
    assert [e.step for e in sharpness] == trace.steps.tolist() == [0, 2, 4]
    assert [e.value for e in sharpness] == pytest.approx(trace.values[:, 0].tolist(), rel=1e-6)
    assert [e.step for e in read.Scalars("train/loss")] == [1, 2, 3, 4, 5]
    assert not list(tmp_path.rglob("*.png"))
