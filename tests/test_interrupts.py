"""``gdscope.interrupts``: Ctrl-C as a request inside polled loops, ``KeyboardInterrupt``
elsewhere; and the grid runner that polls it (chunks grown from small, the tensor engine
stopped mid-chunk)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from gdscope import interrupts
from gdscope.engines.runner import FIRST_CHUNK
from gdscope.problem.data import DataSpec, make_data
from gdscope.studies.sweep import Axis, run_grid


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_outside_a_polled_section_ctrl_c_raises_at_once():
    with interrupts.handle_sigint(), pytest.raises(KeyboardInterrupt):
        ctrl_c()
        time.sleep(1)  # the handler runs before this returns
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_inside_a_polled_or_deferred_section_ctrl_c_is_a_request():
    for section in (interrupts.polled, interrupts.deferred):
        with interrupts.handle_sigint():
            assert not interrupts.requested()
            with section():
                ctrl_c()
                time.sleep(0.05)
                assert interrupts.requested()
    assert not interrupts.requested()  # cleared on the way out: later code runs normally


def test_grid_chunks_grow_from_small_and_progress_starts_with_the_total():
    seen: list[tuple[int, int]] = []
    run_grid(make_data(DataSpec()), "sgd", [Axis.parse("lr=0.01:0.3:100")], epochs=5,
             progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert seen[:2] == [(0, 100), (FIRST_CHUNK, 100)] and seen[-1] == (100, 100)


def test_ctrl_c_between_native_chunks_keeps_the_finished_ones():
    seen: list[int] = []

    def press_after_the_first_chunk(done: int, total: int) -> None:
        seen.append(done)
        if done == FIRST_CHUNK:
            ctrl_c()  # in the polled loop: a request, honoured after this chunk

    with interrupts.handle_sigint():
        run = run_grid(make_data(DataSpec()), "sgd", [Axis.parse("lr=0.001:0.01:40")], epochs=20,
                       chunk=FIRST_CHUNK, progress=press_after_the_first_chunk)  # fmt: skip
    assert seen == [0, FIRST_CHUNK]
    assert run.interrupted and run.completed.tolist() == [True] * FIRST_CHUNK + [False] * 24
    assert np.isnan(run.grid("final_loss")[FIRST_CHUNK:]).all()


def test_ctrl_c_stops_the_tensor_engine_mid_chunk_without_key_errors():
    polls: list[int] = []

    def press_at_the_50th_step() -> bool:  # the caller's own check, polled every step
        polls.append(1)
        if len(polls) == 50:
            ctrl_c()
        return False

    with interrupts.handle_sigint():
        run = run_grid(make_data(DataSpec()), "adam", [Axis.parse("lr=0.01,0.1")],
                       epochs=100_000, should_stop=press_at_the_50th_step)  # fmt: skip
    # Stopped at the next step's check (where Ctrl-C is seen first), not after 100,000 steps.
    assert len(polls) == 50
    assert run.interrupted and not run.completed.any()
    assert np.isnan(run.grid("final_loss")).all() and np.isnan(run.grid("diverged")).all()


def test_chunk_sizes_keep_unpolled_chunks_short_and_let_polled_ones_grow():
    from gdscope.engines.runner import UNPOLLED_SECONDS, GrowingChunks

    native = GrowingChunks(65_536)
    native.took(FIRST_CHUNK, UNPOLLED_SECONDS / 100, polled=False)
    assert native.next == 4 * FIRST_CHUNK  # fast: grows, at most 4× a chunk
    native.took(64, UNPOLLED_SECONDS * 4, polled=False)
    assert native.next == 16  # slow: shrinks to what fits the time Ctrl-C may wait
    torch_engine = GrowingChunks(100)
    torch_engine.took(FIRST_CHUNK, 30.0, polled=True)  # slow, but stopped mid-chunk anyway
    assert torch_engine.next == 64
    torch_engine.took(64, 30.0, polled=True)
    assert torch_engine.next == 100  # the limit


def test_a_ctrl_c_lost_in_a_finalizer_is_raised_again():
    class Dropped:
        def __del__(self) -> None:
            raise KeyboardInterrupt  # as Ctrl-C landing in a __del__ (Python only prints it)

    with interrupts.handle_sigint(), pytest.raises(KeyboardInterrupt):
        Dropped()
        time.sleep(1)
