"""Devices named by the user, checked once."""

from __future__ import annotations

import pytest
import torch

from gdscope.devices import resolve_device
from gdscope.errors import GdscopeError


def test_a_device_is_checked_in_one_line():
    assert resolve_device(None) == torch.device("cpu")
    with pytest.raises(GdscopeError, match=r"^not a device: 'bogus' \(cpu, cuda"):
        resolve_device("bogus")
    if not torch.cuda.is_available():
        with pytest.raises(GdscopeError, match="no CUDA device is available"):
            resolve_device("cuda:1")
