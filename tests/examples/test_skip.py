"""The skip-connection example's networks: the same layers and start, with and without skips."""

from __future__ import annotations

import torch

from gdscope.examples import skip


def test_the_two_networks_start_from_the_same_weights_and_differ_only_in_the_skips():
    residual, plain = skip.make_model(skip=True), skip.make_plain_model()
    assert residual.state_dict().keys() == plain.state_dict().keys()
    for name, value in residual.state_dict().items():
        assert torch.equal(value, plain.state_dict()[name]), name
    residual.eval(), plain.eval()
    x = torch.rand(5, 1, 8, 8)
    assert not torch.allclose(residual(x), plain(x))
    block = skip.Block(4, skip=True).eval()
    inputs = torch.randn(3, 4)
    inner = block.second_bn(block.second(torch.relu(block.first_bn(block.first(inputs)))))
    assert torch.equal(block(inputs), torch.relu(inputs + inner))
    block.skip = False
    assert torch.equal(block(inputs), torch.relu(inner))
    layers = sum(isinstance(m, torch.nn.Linear) for m in residual.modules())
    assert layers == skip.LAYERS == 2 * skip.BLOCKS + 2
