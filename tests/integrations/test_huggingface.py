"""The Hugging Face callback records what ``gdscope.Recorder`` records in a hand-written loop,
on a tiny BERT built from a config (no download)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from gdscope.nets.recorder import Recorder, open_path

from ..conftest import require
from ..reference import assert_same_recording, docs_block

transformers = require("transformers")
require("accelerate", why="transformers' Trainer needs it")

LR, BATCH, VOCAB = 0.05, 4, 40


def make_model(*, attention: str = "sdpa") -> torch.nn.Module:
    """A tiny BERT; ``attention="eager"``: twice differentiable (the sharpness needs it; torch's
    fused attention on the CPU has no second derivative)."""
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16, num_labels=3,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    config._attn_implementation = attention
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


class Sentences(Dataset):
    """Thirty-two random token sequences with labels, the same on every call."""

    def __len__(self) -> int:
        return 32

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(i)
        return {"input_ids": torch.randint(0, VOCAB, (6,), generator=generator),
                "labels": torch.tensor(i % 3)}  # fmt: skip


class InOrder(transformers.Trainer):
    """The Trainer, taking the batches in order (the hand-written loop does)."""

    def _get_train_sampler(self, *args, **kwargs):
        return SequentialSampler(self.train_dataset)


def train(callback, tmp_path, *, accumulate: int = 1, steps: int = 3) -> None:
    model = make_model()
    # BERT's classification loss is a plain mean: told so, the Trainer divides it by the
    # accumulation steps itself, as the hand-written loop does.
    model.accepts_loss_kwargs = False
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, max_steps=steps,
        per_device_train_batch_size=BATCH, gradient_accumulation_steps=accumulate,
        lr_scheduler_type="constant", max_grad_norm=0.0, save_strategy="no",
        logging_strategy="no", dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    InOrder(model=model, args=args, train_dataset=Sentences(), callbacks=[callback],
            optimizers=(optimizer, None)).train()  # fmt: skip


def by_hand(*, accumulate: int = 1, steps: int = 3, **options):
    model = make_model()
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    recorder = Recorder(model, optimizer=optimizer, **options)
    batches = iter(DataLoader(Sentences(), batch_size=BATCH))
    for _ in range(steps):
        losses = []
        for _ in range(accumulate):
            loss = model(**next(batches)).loss
            (loss / accumulate).backward()
            losses.append(float(loss.detach()))
        optimizer.step()
        optimizer.zero_grad()
        recorder.step(sum(losses) / len(losses))
    return recorder.result()


@pytest.mark.parametrize("accumulate", [1, 2])
def test_the_callback_records_what_a_hand_written_loop_records(accumulate, tmp_path):
    from gdscope.integrations.huggingface import RecorderCallback

    callback = RecorderCallback()
    train(callback, tmp_path, accumulate=accumulate)
    expected = by_hand(accumulate=accumulate)
    assert len(expected) == 4  # the start and three optimizer steps
    assert_same_recording(callback.result(), expected)


def test_recorder_keywords_pass_through_to_the_folder_landscape_reads(tmp_path):
    from gdscope.integrations.huggingface import RecorderCallback

    train(RecorderCallback(tmp_path / "rec", every=2), tmp_path, steps=4)
    assert_same_recording(open_path(tmp_path / "rec"), by_hand(steps=4, every=2))


class TinyConfig(transformers.PretrainedConfig):
    model_type = "gdscope-tiny"


class Tiny(transformers.PreTrainedModel):
    """A linear classifier that, like the language models, divides its summed loss by the
    ``num_items_in_batch`` the Trainer passes (the labels of the whole accumulated step)."""

    config_class = TinyConfig

    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        self.linear = torch.nn.Linear(4, 3)
        self.post_init()

    def forward(self, inputs, labels=None, num_items_in_batch=None, **kwargs):
        logits = self.linear(inputs)
        total = torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
        count = num_items_in_batch if num_items_in_batch is not None else len(labels)
        return {"loss": total / count, "logits": logits}


class Points(Dataset):
    def __len__(self) -> int:
        return 32

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(i)
        return {"inputs": torch.randn(4, generator=generator), "labels": torch.tensor(i % 3)}


def test_a_model_dividing_by_the_steps_count_records_the_steps_mean_loss(tmp_path):
    from gdscope.integrations.huggingface import RecorderCallback

    def make_tiny():
        torch.manual_seed(0)
        return Tiny(TinyConfig())

    model, callback = make_tiny(), RecorderCallback()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, max_steps=3,
        per_device_train_batch_size=BATCH, gradient_accumulation_steps=2,
        lr_scheduler_type="constant", max_grad_norm=0.0, save_strategy="no",
        logging_strategy="no", dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    InOrder(model=model, args=args, train_dataset=Points(), callbacks=[callback],
            optimizers=(torch.optim.SGD(model.parameters(), lr=LR), None)).train()  # fmt: skip
    model = make_tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    recorder = Recorder(model, optimizer=optimizer)
    batches = iter(DataLoader(Points(), batch_size=BATCH))
    for _ in range(3):
        group = [next(batches) for _ in range(2)]
        losses = [model(**batch, num_items_in_batch=2 * BATCH)["loss"] for batch in group]
        sum(losses).backward()
        optimizer.step()
        optimizer.zero_grad()
        recorder.step(float(sum(losses).detach()))  # the step's mean over its eight samples
    assert_same_recording(callback.result(), recorder.result())


def test_the_docs_example_records_what_landscape_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(docs_block("frameworks.md", "gdscope.integrations.huggingface import"), {})
    recorded = open_path(tmp_path / "bert-path")
    assert recorded.steps.tolist() == list(range(0, 21, 2))
    assert recorded.optimizer == "AdamW" and np.isfinite(recorded.losses[1:]).all()


@pytest.mark.parametrize("metric", ["eval_loss", "not_there"])
def test_the_callback_records_each_evaluations_loss_at_its_step(tmp_path, metric):
    # Evaluation every 2 steps on one batch of the sentences: each loss is the model's loss at
    # the snapshot of the same step; a metric the evaluation lacks records nothing.
    from gdscope.integrations.huggingface import RecorderCallback

    callback = RecorderCallback(tmp_path / "rec", validation_metric=metric)
    model = make_model()
    model.accepts_loss_kwargs = False
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, max_steps=4,
        per_device_train_batch_size=BATCH, per_device_eval_batch_size=32, eval_strategy="steps",
        eval_steps=2, lr_scheduler_type="constant", max_grad_norm=0.0, save_strategy="no",
        logging_strategy="no", dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    InOrder(model=model, args=args, train_dataset=Sentences(), eval_dataset=Sentences(),
            callbacks=[callback],
            optimizers=(torch.optim.SGD(model.parameters(), lr=LR), None)).train()  # fmt: skip
    recorded = open_path(tmp_path / "rec")
    if metric == "not_there":
        assert recorded.validation_steps.tolist() == [] and len(recorded) == 5
        return
    assert recorded.validation_steps.tolist() == [2, 4]
    fresh = make_model().eval()
    everything = next(iter(DataLoader(Sentences(), batch_size=32)))
    for step, value in zip(recorded.validation_steps, recorded.validation_losses, strict=True):
        fresh.load_state_dict(recorded.state(int(step)), strict=False)
        with torch.no_grad():
            expected = fresh(**everything).loss
        assert value == pytest.approx(float(expected), rel=1e-5)


def sharpness_options() -> dict:
    """The sharpness of BERT's loss on the first batch, every 2 steps."""
    batch = next(iter(DataLoader(Sentences(), batch_size=BATCH)))

    def loss(out, y):
        return torch.nn.functional.cross_entropy(out.logits, y)

    return {"sharpness_every": 2, "sharpness_data": [(batch["input_ids"], batch["labels"])],
            "sharpness_loss": loss}  # fmt: skip


class Reporter(transformers.TrainerCallback):
    """Where a reporting integration (TensorBoard's, W&B's) sits: before the user's callbacks,
    reading ``logs`` in ``on_log`` at the Trainer's step."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, dict]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.seen.append((state.global_step, dict(logs)))


def test_the_callback_hands_the_sharpness_to_the_trainers_reporting(tmp_path):
    # log_sharpness: every measurement (step 0 included) reaches the reporting callbacks at its
    # step, with its threshold and learning rate: the numbers the recording holds; the
    # Trainer's own logs (the loss at every step) go on as before.
    from gdscope.errors import GdscopeError
    from gdscope.integrations.huggingface import RecorderCallback

    model, reporter = make_model(attention="eager"), Reporter()
    model.accepts_loss_kwargs = False
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, max_steps=5,
        per_device_train_batch_size=BATCH, lr_scheduler_type="constant", max_grad_norm=0.0,
        save_strategy="no", logging_strategy="steps", logging_steps=1,
        dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    trainer = InOrder(model=model, args=args, train_dataset=Sentences(), callbacks=[reporter],
                      optimizers=(torch.optim.SGD(model.parameters(), lr=LR), None))  # fmt: skip
    callback = RecorderCallback(trainer=trainer, log_sharpness=True, **sharpness_options())
    trainer.add_callback(callback)
    trainer.train()
    rows = [(step, logs) for step, logs in reporter.seen if "gdscope/sharpness" in logs]
    trace = callback.result().sharpness
    assert trace is not None and trace.steps.tolist() == [0, 2, 4]
    assert [step for step, _ in rows] == trace.steps.tolist()
    np.testing.assert_allclose([r["gdscope/sharpness"] for _, r in rows], trace.values[:, 0])
    np.testing.assert_allclose([r["gdscope/threshold"] for _, r in rows], 2 / LR)
    np.testing.assert_allclose([r["gdscope/lr"] for _, r in rows], LR)
    assert [step for step, logs in reporter.seen if "loss" in logs] == [1, 2, 3, 4, 5]
    history = [(e["step"], e["gdscope/sharpness"]) for e in trainer.state.log_history
               if "gdscope/sharpness" in e]  # fmt: skip
    assert history == [(step, r["gdscope/sharpness"]) for step, r in rows]
    with pytest.raises(GdscopeError, match="log_sharpness needs the Trainer"):
        RecorderCallback(log_sharpness=True, **sharpness_options())
    with pytest.raises(GdscopeError, match="log_sharpness needs the sharpness measured"):
        RecorderCallback(trainer=trainer, log_sharpness=True)


def test_landscape_snapshots_go_to_output_dir_and_leave_the_training_bit_for_bit(tmp_path):
    # landscape_every=2 with log_sharpness on: the trained weights and every snapshot are
    # bitwise those of the same training without either; without TensorBoard reporting each
    # snapshot is a PNG in output_dir, named by its step.
    from gdscope.integrations.huggingface import RecorderCallback

    runs = []
    for extra in ({}, {"landscape_every": 2, "log_sharpness": True, **sharpness_options()}):
        model = make_model(attention="eager")
        model.accepts_loss_kwargs = False
        out = tmp_path / f"out{len(runs)}"
        args = transformers.TrainingArguments(
            output_dir=str(out), report_to=[], use_cpu=True, max_steps=5,
            per_device_train_batch_size=BATCH, lr_scheduler_type="constant", max_grad_norm=0.0,
            save_strategy="no", logging_strategy="no", dataloader_num_workers=0,
            disable_tqdm=True,
        )  # fmt: skip
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        trainer = InOrder(model=model, args=args, train_dataset=Sentences(),
                          optimizers=(optimizer, None))  # fmt: skip
        callback = RecorderCallback(trainer=trainer if extra else None, **extra)
        trainer.add_callback(callback)
        trainer.train()
        runs.append((model, callback.result(), out))
    (plain, plain_path, _), (model, path, out) = runs
    for name, value in plain.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name
    assert_same_recording(path, plain_path, atol=0)
    written = sorted(p.name for p in out.glob("gdscope-landscape-*.png"))
    assert written == ["gdscope-landscape-step0000002.png", "gdscope-landscape-step0000004.png"]


def test_the_docs_example_with_the_sharpness_and_landscapes_logs_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(docs_block("frameworks.md", "gdscope.integrations.huggingface import"), scope)
    exec(docs_block("frameworks.md", "landscape_every=10"), scope)
    # AdamW has no preconditioned sharpness before its first step, and the linear schedule
    # ends at a learning rate of 0, with no threshold: what is NaN is left out of the log.
    history = scope["trainer"].state.log_history
    logged = {name: [e["step"] for e in history if f"gdscope/{name}" in e]
              for name in ("lr", "sharpness", "threshold")}  # fmt: skip
    assert logged == {"lr": [0, 5, 10, 15, 20], "sharpness": [5, 10, 15, 20],
                      "threshold": [0, 5, 10, 15]}  # fmt: skip
    written = sorted(p.name for p in (tmp_path / "bert-out").glob("gdscope-landscape-*.png"))
    assert written == ["gdscope-landscape-step0000010.png", "gdscope-landscape-step0000020.png"]
    assert open_path(tmp_path / "bert-path").sharpness is not None
