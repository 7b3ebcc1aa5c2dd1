"""Studies: many runs at once. Sweeps over hyperparameter grids, phase-diagram metrics, the
tuned optimizer shoot-out."""
