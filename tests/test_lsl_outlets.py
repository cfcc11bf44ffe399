"""Tests of the LSL stream layouts, the pylsl import, and a loopback through real liblsl."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from emgd.config import load_config
from emgd.errors import ConfigError
from emgd.service.lsl_bridge import LslBridge
from emgd.service.lsl_outlets import (
    PylslOutlet,
    board_source_id,
    import_pylsl,
    machine_serial,
    stream_specs,
)
from emgd.service.lsl_time import LslClockMap

BOARD = "ADS1299 (ID 0x3E, 8-channel part, 8 used, 1000 Hz, gain 24) on simulated SPI"


def config(*extra: str):
    return load_config(env={}, overrides=["lsl.enabled=true", *extra])


def real_pylsl() -> ModuleType:
    """pylsl with its liblsl, or a skip naming what is missing."""
    try:
        import pylsl
    except ImportError as exc:
        pytest.skip(f"pylsl is not installed (pip install 'emgd[lsl]'): {exc}")
    except RuntimeError as exc:
        pytest.skip(f"pylsl cannot load liblsl on this machine: {exc}")
    module: ModuleType = pylsl
    return module


def test_the_three_streams_follow_the_config_and_the_xdf_conventions() -> None:
    cfg = config("adc.channels=6", "adc.sample_rate_hz=2000", "lsl.name=lab")
    emg, angles, markers = stream_specs(cfg, BOARD, 0.02, "sid")
    assert (emg.name, emg.type, emg.nominal_rate_hz, emg.channel_format) == (
        "lab EMG",
        "EMG",
        2000.0,
        "float32",
    )
    assert emg.channel_labels == ("EMG1", "EMG2", "EMG3", "EMG4", "EMG5", "EMG6")
    assert emg.channel_units == ("microvolts",) * 6 and emg.channel_types == ("EMG",) * 6
    assert dict(emg.acquisition)["manufacturer"] == "Texas Instruments"
    assert (angles.name, angles.type, angles.n_channels) == ("lab angles", "Angles", 10)
    assert angles.nominal_rate_hz == pytest.approx(50.0)
    assert angles.channel_labels[0] == "commanded_thumb"
    assert angles.channel_labels[9] == "model_little"
    assert angles.channel_units == ("degrees",) * 10
    assert (markers.type, markers.channel_format, markers.nominal_rate_hz) == (
        "Markers",
        "string",
        0.0,
    )
    assert {s.source_id for s in (emg, angles, markers)} == {
        "sid:emg",
        "sid:angles",
        "sid:markers",
    }


def test_the_source_id_is_stable_for_one_board_and_changes_with_it() -> None:
    cfg = config()
    one = board_source_id(cfg, BOARD, "10000000c0ffee01")
    assert one == board_source_id(cfg, BOARD, "10000000c0ffee01")
    assert one.startswith("emgd-ads1299-10000000c0ffee01-")
    assert one != board_source_id(cfg, BOARD.replace("0x3E", "0x3C"), "10000000c0ffee01")
    assert one != board_source_id(cfg, BOARD, "10000000c0ffee02")
    named = board_source_id(config("lsl.source_id=bench-rig-2"), BOARD, "x")
    assert named.startswith("bench-rig-2-") and named[-8:] == one[-8:]


def test_the_machine_serial_comes_from_the_first_readable_file(tmp_path: Path) -> None:
    pi = tmp_path / "serial-number"
    pi.write_bytes(b"10000000c0ffee01\x00")
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("0123456789abcdef0123456789abcdef\n")
    assert machine_serial([tmp_path / "absent", pi, machine_id]) == "10000000c0ffee01"
    assert machine_serial([tmp_path / "absent", machine_id]) == "0123456789abcdef"
    empty = tmp_path / "empty"
    empty.write_text("")
    assert machine_serial([empty]) != ""  # the host name


def test_lsl_enabled_without_pylsl_is_one_config_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pylsl", None)  # import pylsl raises ImportError
    with pytest.raises(ConfigError) as info:
        import_pylsl(config())
    text = str(info.value)
    assert "lsl.enabled = true" in text and "pip install 'emgd[lsl]'" in text
    assert "\n" not in text


def test_the_daemon_refuses_to_start_without_pylsl_before_touching_hardware(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from emgd.service import runner

    monkeypatch.setitem(sys.modules, "pylsl", None)

    def no_spawn(*args: object, **kwargs: object) -> None:
        raise AssertionError("the acquisition process was started")

    monkeypatch.setattr(runner, "AcquisitionProcess", no_spawn)
    with pytest.raises(ConfigError, match=r"emgd\[lsl\]"):
        runner.Daemon(config(), env={}).start()


def test_a_pylsl_without_its_library_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "pylsl", raising=False)
    finder = _RaisingFinder(RuntimeError("LSL binary library file was not found."))
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    with pytest.raises(ConfigError, match=r"cannot load liblsl.*PYLSL_LIB"):
        import_pylsl(config())


class _RaisingFinder:
    """An import hook that makes ``import pylsl`` raise like pylsl without liblsl does."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "pylsl":
            raise self.exc


# --- loopback through liblsl ------------------------------------------------------------


def resolve_one(pylsl: ModuleType, source_id: str):
    found = pylsl.resolve_byprop("source_id", source_id, 1, 10.0)
    assert found, f"no LSL stream with source_id {source_id} on loopback"
    return found[0]


def test_loopback_outlets_resolve_by_source_id_with_units_and_the_sample_clock() -> None:
    pylsl = real_pylsl()
    cfg = config("adc.channels=4")
    sid = f"emgd-test-{uuid.uuid4().hex[:12]}"
    specs = stream_specs(cfg, BOARD, 0.02, sid)
    outlets = {spec.key: PylslOutlet(pylsl, spec) for spec in specs}
    clock_map = LslClockMap(time.monotonic_ns, pylsl.local_clock)
    # On Linux liblsl's clock is CLOCK_MONOTONIC, the DRDY stamps' clock.
    assert abs(clock_map.offset_s) < 1e-3
    bridge = LslBridge(
        specs, outlets, sample_rate_hz=1000.0, clock_map=clock_map, capacity_chunks=64
    )
    inlets = {}
    try:
        for key in ("emg", "markers"):
            inlet = pylsl.StreamInlet(resolve_one(pylsl, f"{sid}:{key}"))
            inlet.open_stream(10.0)
            inlets[key] = inlet
        info = inlets["emg"].info(10.0)
        assert info.channel_count() == 4 and info.nominal_srate() == 1000.0
        assert info.type() == "EMG"
        channel = info.desc().child("channels").child("channel")
        labels, units = [], []
        while not channel.empty():
            labels.append(channel.child_value("label"))
            units.append(channel.child_value("unit"))
            channel = channel.next_sibling()
        assert labels == ["EMG1", "EMG2", "EMG3", "EMG4"]
        assert units == ["microvolts"] * 4
        # 0.5 s of frames at 1 kHz, DRDY stamped with 40 µs of jitter, in hops of 20.
        rng = np.random.default_rng(1)
        t0 = time.monotonic_ns() - 1_000_000_000
        index = np.arange(500, dtype=np.int64)
        drdy = (t0 + index * 1_000_000 + rng.integers(-40_000, 40_000, 500)).astype(np.int64)
        emg = (np.arange(2000, dtype=np.float32).reshape(500, 4) - 1000.0) * 0.5
        for start in range(0, 500, 20):
            sl = slice(start, start + 20)
            bridge.on_frames(index[sl], drdy[sl], emg[sl])
        bridge.marker(t0 + 250_000_000, "cue record power effort 0.50")
        samples, stamps = pull(inlets["emg"], 500)
        marks, mark_stamps = pull(inlets["markers"], 1)
    finally:
        bridge.close()
    assert np.array(samples) == pytest.approx(emg)  # µV, exact in float32
    stamps_s = np.array(stamps)
    assert np.all(np.diff(stamps_s) > 0)
    # The sample clock: t0 + index × 1 ms (to a few µs), not the jittered edges.
    expected_s = clock_map.to_lsl_s(t0 + index * 1_000_000)
    assert np.max(np.abs(stamps_s[100:] - expected_s[100:])) < 15e-6
    assert marks == [["cue record power effort 0.50"]]
    assert mark_stamps[0] == pytest.approx(clock_map.scalar_to_lsl_s(t0 + 250_000_000), abs=1e-6)


def pull(inlet: Any, n: int) -> tuple[list[Any], list[float]]:
    samples: list[Any] = []
    stamps: list[float] = []
    deadline = time.monotonic() + 10.0
    while len(samples) < n and time.monotonic() < deadline:
        got, ts = inlet.pull_chunk(timeout=0.5)
        samples += got
        stamps += ts
    assert len(samples) == n, f"received {len(samples)} of {n} samples over loopback"
    return samples, stamps
