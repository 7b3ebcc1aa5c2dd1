"""Optimizers as data: ``torch.optim`` specs by name, SGD's settings, the batched update
rules (pure ``init``/``update`` over explicit state) and the one table of their hyperparameters
from which the CLI, the API and the page build their options."""
