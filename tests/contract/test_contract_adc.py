"""Contract of every ADC driver (``AdcDriver``), written once.

Runs against the simulated ADS1299 and MCP3008 in CI and against the real board when
``EMGD_TEST_HARDWARE=1`` (then the parametrisation collapses to the configured backend).
"""

from __future__ import annotations

import numpy as np
import pytest

from emgd.clock import NS_PER_S, Clock
from emgd.hw.interfaces import Frame
from emgd.service.board import Board
from tests.conftest import HARDWARE

BACKENDS = ["ads1299"] if HARDWARE else ["ads1299", "mcp3008"]
N_FRAMES = 400


def read_frames(board: Board, n: int) -> list[Frame]:
    frames = []
    for _ in range(n):
        frame = board.adc.read_frame(timeout_s=0.5)
        assert frame is not None, "no frame within 0.5 s"
        frames.append(frame)
    return frames


@pytest.mark.parametrize("board_and_clock", BACKENDS, indirect=True)
def test_frames_are_consecutive_and_timed_at_the_sample_rate(
    board_and_clock: tuple[Board, Clock],
) -> None:
    board, _clock = board_and_clock
    board.adc.start()
    frames = read_frames(board, N_FRAMES)
    indices = np.array([f.index for f in frames])
    stamps = np.array([f.timestamp_ns for f in frames])
    lost = board.adc.stats.frames_lost
    # Every gap in the index is a counted lost frame, and nothing else.
    assert int(np.sum(np.diff(indices) - 1)) <= lost
    assert np.all(np.diff(indices) >= 1)
    assert np.all(np.diff(stamps) > 0)
    period_ns = NS_PER_S / board.adc.sample_rate_hz
    median_step = float(np.median(np.diff(stamps) / np.diff(indices)))
    assert median_step == pytest.approx(period_ns, rel=0.02)
    assert board.adc.stats.frames_read >= N_FRAMES


@pytest.mark.parametrize("board_and_clock", BACKENDS, indirect=True)
def test_frames_carry_finite_microvolts_per_channel(
    board_and_clock: tuple[Board, Clock],
) -> None:
    board, _clock = board_and_clock
    board.adc.start()
    frames = read_frames(board, N_FRAMES)
    emg = np.stack([f.emg_uv for f in frames])
    assert emg.shape == (N_FRAMES, board.adc.n_channels)
    assert np.all(np.isfinite(emg))
    # Surface EMG plus noise: not a constant, and well inside a few millivolts.
    assert np.all(emg.std(axis=0) > 0.1)
    assert np.all(np.abs(emg) < 5000.0)


@pytest.mark.parametrize("board_and_clock", BACKENDS, indirect=True)
def test_stop_then_start_again_resumes(board_and_clock: tuple[Board, Clock]) -> None:
    board, _clock = board_and_clock
    board.adc.start()
    read_frames(board, 10)
    board.adc.stop()
    board.adc.start()
    read_frames(board, 10)
    assert board.adc.stats.frames_read >= 20
