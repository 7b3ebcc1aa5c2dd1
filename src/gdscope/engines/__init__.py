"""Engines that run an optimizer on a problem and record ``Trajectory`` values: the reference
``torch.optim`` loop, the batched K-configuration engine, the native C kernel, the mini-batch
order."""
