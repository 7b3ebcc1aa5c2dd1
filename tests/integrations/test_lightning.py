"""The Lightning callback records what ``gdscope.Recorder`` records in a hand-written loop."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from gdscope.errors import GdscopeError
from gdscope.examples import mlp
from gdscope.nets.recorder import Recorder, open_path

from ..conftest import require
from ..reference import assert_same_recording, docs_block

pl = require("lightning.pytorch")

LR, BATCH, SAMPLES = 0.1, 30, 180  # six batches


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)


def loader() -> DataLoader:
    return DataLoader(mlp.make_dataset(SAMPLES, seed=1), batch_size=BATCH)


class Module(pl.LightningModule):
    """The MLP example, trained by Lightning."""

    def __init__(self) -> None:
        super().__init__()
        self.model = mlp.make_model(seed=0)

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        return nn.functional.cross_entropy(self.model(inputs), targets)

    def configure_optimizers(self):
        return make_optimizer(self.model)


def fit(callback, *, accumulate: int = 1, steps: int = 3) -> None:
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accumulate_grad_batches=accumulate,
                         callbacks=[callback])  # fmt: skip
    trainer.fit(Module(), loader())


def by_hand(*, accumulate: int = 1, steps: int = 3, **options):
    """The same steps in a plain loop: gradients of ``accumulate`` batches, then a step."""
    model = mlp.make_model(seed=0)
    optimizer = make_optimizer(model)
    recorder = Recorder(model, optimizer=optimizer, **options)
    batches = iter(loader())
    for _ in range(steps):
        optimizer.zero_grad()
        losses = []
        for _ in range(accumulate):
            inputs, targets = next(batches)
            loss = nn.functional.cross_entropy(model(inputs), targets)
            (loss / accumulate).backward()
            losses.append(float(loss.detach()))
        optimizer.step()
        recorder.step(sum(losses) / len(losses))
    return recorder.result()


@pytest.mark.parametrize("accumulate", [1, 2])
def test_the_callback_records_what_a_hand_written_loop_records(accumulate):
    from gdscope.integrations.lightning import RecorderCallback

    callback = RecorderCallback(submodule="model")
    fit(callback, accumulate=accumulate)
    expected = by_hand(accumulate=accumulate)
    assert len(expected) == 4  # the start and three optimizer steps
    assert_same_recording(callback.result(), expected, atol=0)  # bit for bit


def test_recorder_keywords_pass_through_and_the_folder_is_what_landscape_reads(tmp_path):
    from gdscope.integrations.lightning import RecorderCallback

    fit(RecorderCallback(tmp_path / "rec", submodule="model", every=2), steps=4)
    assert_same_recording(open_path(tmp_path / "rec"), by_hand(steps=4, every=2), atol=0)
    with pytest.raises(GdscopeError, match="already holds a recording"):
        fit(RecorderCallback(tmp_path / "rec", submodule="model"))
    fit(RecorderCallback(tmp_path / "rec", submodule="model", force=True), steps=1)
    assert len(open_path(tmp_path / "rec")) == 2
    with pytest.raises(GdscopeError, match="no submodule 'net'"):
        fit(RecorderCallback(submodule="net"))


def test_the_docs_example_records_what_landscape_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(docs_block("frameworks.md", "gdscope.integrations.lightning import"), {})
    recorded = open_path(tmp_path / "spiral-path")
    assert recorded.steps.tolist() == list(range(0, 31, 5))  # 2 epochs of 15 batches
    assert recorded.layout.names[0] == "0.weight" and (tmp_path / "spiral.pt").exists()


def test_the_callback_records_the_sharpness_too():
    # Recorder's sharpness options pass through the callback: the same values as by hand.
    import numpy as np

    from gdscope.integrations.lightning import RecorderCallback

    probe = [next(iter(loader()))]
    options = {"sharpness_every": 1, "sharpness_data": probe,
               "sharpness_loss": nn.CrossEntropyLoss()}  # fmt: skip
    callback = RecorderCallback(submodule="model", **options)
    fit(callback)
    recorded, expected = callback.result().sharpness, by_hand(**options).sharpness
    assert recorded is not None and expected is not None
    np.testing.assert_allclose(recorded.values, expected.values, rtol=1e-6)
    np.testing.assert_array_equal(recorded.steps, expected.steps)
    np.testing.assert_allclose(recorded.threshold, 2 * (1 + 0.9) / LR)  # heavy ball: 2(1+μ)/η


def test_the_callback_hands_the_sharpness_to_the_trainers_logger(tmp_path):
    # log_sharpness: every measurement (step 0 included) reaches the trainer's CSV logger at
    # its step, with its threshold and learning rate: the numbers the recording holds.
    import csv

    import numpy as np
    from lightning.pytorch.loggers import CSVLogger

    from gdscope.integrations.lightning import RecorderCallback

    probe = [next(iter(loader()))]
    options = {"sharpness_every": 2, "sharpness_data": probe,
               "sharpness_loss": nn.CrossEntropyLoss()}  # fmt: skip
    callback = RecorderCallback(submodule="model", log_sharpness=True, **options)

    logger = CSVLogger(tmp_path)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=5, logger=logger,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[callback])  # fmt: skip
    trainer.fit(Module(), loader())
    with open(next(tmp_path.rglob("metrics.csv")), newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("gdscope/sharpness")]
    trace = callback.result().sharpness
    assert trace is not None and trace.steps.tolist() == [0, 2, 4]
    assert [int(r["step"]) for r in rows] == trace.steps.tolist()
    np.testing.assert_allclose([float(r["gdscope/sharpness"]) for r in rows], trace.values[:, 0],
                               rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose([float(r["gdscope/threshold"]) for r in rows], trace.threshold)
    np.testing.assert_allclose([float(r["gdscope/lr"]) for r in rows], trace.lr)


class Validated(Module):
    """The MLP example, with a validation loss logged as ``val_loss``."""

    def validation_step(self, batch, batch_idx):
        inputs, targets = batch
        self.log("val_loss", nn.functional.cross_entropy(self.model(inputs), targets))


def validation_set() -> DataLoader:
    return DataLoader(mlp.make_dataset(40, seed=2), batch_size=40)  # one batch: its mean is logged


@pytest.mark.parametrize("metric", ["val_loss", "not_logged"])
def test_the_callback_records_each_validation_loss_at_its_step(tmp_path, metric):
    # Validation every 2 optimizer steps, after a sanity check (not recorded): each value is the
    # loss of the snapshot taken at the same step, on the validation batch. A metric the module
    # does not log records nothing, without an error.
    from gdscope.integrations.lightning import RecorderCallback

    callback = RecorderCallback(tmp_path / "rec", submodule="model", validation_metric=metric)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=4, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, val_check_interval=2,
                         check_val_every_n_epoch=None, num_sanity_val_steps=1,
                         callbacks=[callback])  # fmt: skip
    trainer.fit(Validated(), loader(), validation_set())
    recorded = open_path(tmp_path / "rec")
    if metric == "not_logged":
        assert recorded.validation_steps.tolist() == [] and len(recorded) == 5
        return
    assert recorded.validation_steps.tolist() == [2, 4]
    model = mlp.make_model(seed=0)
    inputs, targets = next(iter(validation_set()))
    for step, value in zip(recorded.validation_steps, recorded.validation_losses, strict=True):
        model.load_state_dict(recorded.state(int(step)), strict=False)
        with torch.no_grad():
            expected = nn.functional.cross_entropy(model(inputs), targets)
        assert value == pytest.approx(float(expected), rel=1e-6)


class Dropping(pl.LightningModule):
    """The MLP example with dropout, recorded whole: the landscape must leave its train mode and
    the random numbers dropout and the shuffling loader draw as they were."""

    def __init__(self) -> None:
        super().__init__()
        self.model, self.drop = mlp.make_model(seed=0), nn.Dropout(0.3)

    def forward(self, inputs):
        return self.drop(self.model(inputs))

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        return nn.functional.cross_entropy(self(inputs), targets)

    def configure_optimizers(self):
        return make_optimizer(self)


class MetricsLogger(pl.loggers.Logger):
    """A logger of numbers only, with no folder of its own (as MLflow's with a remote server)."""

    @property
    def name(self) -> str:
        return "metrics"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        pass


class ImageLogger(MetricsLogger):
    """A logger that takes images (as W&B's does: ``log_image(key, images, step)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[tuple[str, int, object]] = []

    def log_image(self, key, images, step=None, **kwargs) -> None:
        self.images.extend((key, step, image) for image in images)


def test_landscape_snapshots_reach_the_loggers_and_leave_the_training_bit_for_bit(tmp_path):
    # landscape_every=3 with log_sharpness on: the trained weights and every snapshot are
    # bitwise those of the same training without either; a snapshot at steps 3 and 6 reaches a
    # logger with log_image as a figure, the CSV logger (no images) as a PNG named by step in
    # its log_dir, and a logger with no folder as one in the trainer's default_root_dir.
    from matplotlib.figure import Figure

    from gdscope.integrations.lightning import RecorderCallback

    probe = [next(iter(loader()))]
    runs = []
    sharpness = {"sharpness_every": 2, "sharpness_data": probe,
                 "sharpness_loss": nn.CrossEntropyLoss()}  # fmt: skip
    for extra in ({}, {"landscape_every": 3, "log_sharpness": True, **sharpness}):
        torch.manual_seed(7)
        csv, images = pl.loggers.CSVLogger(tmp_path / str(len(runs))), ImageLogger()
        callback = RecorderCallback(every=2, **extra)
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=7,
                             logger=[csv, images, MetricsLogger()],
                             default_root_dir=tmp_path / f"root{len(runs)}",
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, callbacks=[callback])  # fmt: skip
        module = Dropping()
        trainer.fit(module, DataLoader(mlp.make_dataset(SAMPLES, seed=1), batch_size=BATCH,
                                       shuffle=True))  # fmt: skip
        runs.append((module, callback.result(), csv, images))
    (plain, plain_path, _, _), (module, path, csv, images) = runs
    assert module.training and plain.training
    for name, value in plain.state_dict().items():
        assert torch.equal(value, module.state_dict()[name]), name
    assert_same_recording(path, plain_path, atol=0)
    logged = [(key, step) for key, step, _ in images.images]
    assert logged == [("gdscope/landscape", 3), ("gdscope/landscape", 6)]
    assert all(isinstance(figure, Figure) for _, _, figure in images.images)
    for folder in (Path(csv.log_dir), tmp_path / "root1"):
        written = sorted(p.name for p in folder.glob("gdscope-landscape-*.png"))
        assert written == ["gdscope-landscape-step0000003.png",
                           "gdscope-landscape-step0000006.png"]  # fmt: skip
        assert all((folder / name).read_bytes()[:4] == b"\x89PNG" for name in written)
    assert not list((tmp_path / "root0").rglob("*.png")) and not list(tmp_path.glob("*.png"))
