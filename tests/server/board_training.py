"""A real training for gdscope board's tests: the example MLP (``gdscope.examples.mlp``) trained
by Lightning with gdscope's ``RecorderCallback``, which writes the path and the sharpness to
``FOLDER`` step by step. ``PAUSE`` seconds between steps pace it so that a page opened on the
board sees the steps arrive (it is pacing, not a measurement).

    python tests/server/board_training.py FOLDER EPOCHS PAUSE
"""

from __future__ import annotations

import sys
import time

import lightning
import torch
from torch import nn

from gdscope.examples.mlp import make_loader, make_model
from gdscope.integrations.lightning import RecorderCallback


class Spiral(lightning.LightningModule):
    def __init__(self, pause: float) -> None:
        super().__init__()
        self.model, self.pause = make_model(), pause

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
        x, y = batch
        time.sleep(self.pause)
        return nn.functional.cross_entropy(self.model(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.5)


def main(folder: str, epochs: int, pause: float) -> None:
    torch.set_num_threads(1)
    callback = RecorderCallback(folder, submodule="model", sharpness_every=25,
                                sharpness_data=make_loader(batch_size=500),
                                sharpness_loss=nn.CrossEntropyLoss())  # fmt: skip
    trainer = lightning.Trainer(max_epochs=epochs, callbacks=[callback], logger=False,
                                enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, accelerator="cpu")  # fmt: skip
    trainer.fit(Spiral(pause), make_loader(batch_size=100, shuffle=True))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
