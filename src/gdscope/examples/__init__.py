"""Models and synthetic data sets that run offline (no downloads), for the landscape examples.

Each model module exposes ``make_model()`` and ``make_loader()`` so that ``gdscope landscape
--model gdscope.examples.cnn:make_model --data gdscope.examples.cnn:make_loader`` works.
"""
