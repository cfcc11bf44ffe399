"""Tests of emgd.data.bdf_writer: the bytes read back in pyedflib and MNE, gaps and cues as
annotations, a SIGKILL mid-session and a full disk leave a readable file."""

from __future__ import annotations

import datetime as dt
import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pyedflib
import pytest

from emgd.data.bdf_writer import (
    BdfSessionWriter,
    PhysicalRange,
    SessionHeader,
    default_labels,
)
from emgd.errors import ConfigError, RecordingError

RATE_HZ = 250
START = dt.datetime(2026, 12, 7, 9, 30, 5)
ADS_RANGE = PhysicalRange.ads1299(gain=24, vref_v=4.5)


def _header(n_channels: int = 4, **kw: Any) -> SessionHeader:
    args: dict[str, object] = {
        "channel_labels": default_labels(n_channels),
        "sample_rate_hz": RATE_HZ,
        "device": "ads1299",
        "ranges": ADS_RANGE,
        "start": START,
        "participant": "wearer 7",
        "session": "s1",
        "config": {"gain": 24, "vref_v": 4.5},
    }
    args.update(kw)
    return SessionHeader(**args)  # type: ignore[arg-type]


def _emg(n: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 200.0, (n, c))


def _annotations(path: Path) -> list[tuple[float, str]]:
    with pyedflib.EdfReader(str(path)) as reader:
        onsets, _, texts = reader.readAnnotations()
    return [(float(o), str(t)) for o, t in zip(onsets, texts, strict=True)]


def test_round_trip_within_one_lsb_and_header_fields(tmp_path: Path) -> None:
    path = tmp_path / "s.bdf"
    x = _emg(3 * RATE_HZ + 40, 4)
    with BdfSessionWriter(path, _header(), sync=False) as writer:
        writer.write_frames(x[:100], 0)
        writer.write_frames(x[100:], 100)
        assert writer.records_written == 3
    with pyedflib.EdfReader(str(path)) as reader:
        assert reader.datarecords_in_file == 4  # the last 40 frames padded to a whole second
        assert reader.filetype == pyedflib.FILETYPE_BDFPLUS
        assert reader.getLabel(0) == "EMG1" and reader.getPhysicalDimension(3) == "uV"
        assert reader.getSampleFrequency(0) == RATE_HZ
        assert reader.getPatientCode() == "wearer 7"  # "_" in the file
        assert reader.getEquipment() == "emgd ads1299"
        assert reader.getStartdatetime() == START
        back = np.stack([reader.readSignal(i) for i in range(4)], axis=1)
    assert np.abs(back[: x.shape[0]] - x).max() <= ADS_RANGE.uv_per_digit
    assert np.array_equal(back[x.shape[0] :], np.repeat(back[x.shape[0] - 1 : x.shape[0]], 210, 0))
    texts = [t for _, t in _annotations(path)]
    assert texts[0] == "session start device=ads1299 rate_hz=250 channels=4 gain=24 vref_v=4.5"
    assert texts[-1] == f"session end frames={x.shape[0]}"


def test_ads1299_codes_come_back_within_one_code_over_the_full_scale(tmp_path: Path) -> None:
    lsb_uv = 2 * 4.5 / 24 / 2**24 * 1e6
    codes = np.array([[-(2**23), 2**23 - 1, 0, 1, -1, 123456]] * RATE_HZ, dtype=np.float64)
    path = tmp_path / "codes.bdf"
    with BdfSessionWriter(path, _header(6), sync=False) as writer:
        writer.write_frames(codes * lsb_uv, 0)
    with pyedflib.EdfReader(str(path)) as reader:
        digital = np.stack([reader.readSignal(i, digital=True) for i in range(6)], axis=1)
    assert np.abs(digital[:RATE_HZ] - codes).max() <= 1


def test_mcp3008_range_in_a_24_bit_container(tmp_path: Path) -> None:
    rng = PhysicalRange.mcp3008(vref_v=3.3, frontend_gain=1000.0, offset_v=1.65)
    assert (rng.digital_min, rng.digital_max) == (0, 1023)
    codes = np.arange(RATE_HZ * 2, dtype=np.float64).reshape(-1, 2) % 1024
    uv = codes * 3.3 / 1024 / 1000.0 * 1e6 - 1.65 / 1000.0 * 1e6
    path = tmp_path / "mcp.bdf"
    with BdfSessionWriter(path, _header(2, device="mcp3008", ranges=rng), sync=False) as w:
        w.write_frames(uv, 0)
    with pyedflib.EdfReader(str(path)) as reader:
        back = np.stack([reader.readSignal(i) for i in range(2)], axis=1)
        digital = reader.readSignal(0, digital=True)
    assert np.array_equal(digital[: codes.shape[0]], codes[:, 0].astype(np.int64))
    assert np.abs(back[: uv.shape[0]] - uv).max() <= rng.uv_per_digit


def test_gaps_and_cues_are_annotations_that_mne_reads(tmp_path: Path) -> None:
    import mne  # type: ignore[import-untyped]

    path = tmp_path / "g.bdf"
    x = _emg(2 * RATE_HZ, 3)
    with BdfSessionWriter(path, _header(3), sync=False) as writer:
        writer.cue(0.25, "power", 0.5, 2, "start")
        writer.write_frames(x[:100], 1000)
        writer.write_frames(x[100:], 1112)  # frames 1100 … 1111 were lost
        writer.cue(1.75, "power", 0.5, 2, "end")
        assert writer.frames_lost == 12
    expected = [
        (0.25, "cue gesture=power effort=0.5 rep=2 start"),
        (0.4, "gap frames=12 from_seq=1100"),
        (1.75, "cue gesture=power effort=0.5 rep=2 end"),
        (2.0, f"session end frames={2 * RATE_HZ}"),
    ]
    assert _annotations(path)[1:] == expected
    raw = mne.io.read_raw_bdf(path, verbose="error")
    # Two full seconds, plus one second of padding that carries "session end".
    assert raw.n_times == 3 * RATE_HZ and raw.info["sfreq"] == RATE_HZ
    assert raw.ch_names == ["EMG1", "EMG2", "EMG3"]
    got = [(round(float(a["onset"]), 6), a["description"]) for a in raw.annotations]
    assert got[1:] == expected
    data_uv = raw.get_data().T * 1e6
    assert np.abs(data_uv[: x.shape[0]] - x).max() <= ADS_RANGE.uv_per_digit
    assert np.abs(data_uv[x.shape[0] :] - x[-1]).max() <= ADS_RANGE.uv_per_digit


def test_annotations_beyond_one_records_room_spill_into_the_next(tmp_path: Path) -> None:
    path = tmp_path / "many.bdf"
    with BdfSessionWriter(path, _header(1), sync=False) as writer:
        for k in range(40):
            writer.cue(0.01 * k, "open", 1, k, "start")
        writer.write_frames(np.zeros((RATE_HZ * 3, 1)), 0)
    cues = [t for _, t in _annotations(path) if t.startswith("cue")]
    assert cues == [f"cue gesture=open effort=1 rep={k} start" for k in range(40)]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"device": "openbci"}, "device 'openbci'"),
        ({"sample_rate_hz": 250.5}, "whole number"),
        ({"channel_labels": ("EMG1", "EMG1", "EMG3", "EMG4")}, "repeat"),
        ({"channel_labels": ("a" * 17, "b", "c", "d")}, "longer than 16"),
        ({"ranges": (ADS_RANGE,)}, "1 physical ranges for 4 channels"),
        ({"participant": "Jörg"}, "printable ASCII"),
    ],
)
def test_bad_header_is_one_config_error(tmp_path: Path, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        BdfSessionWriter(tmp_path / "bad.bdf", _header(**kw))
    assert not (tmp_path / "bad.bdf").exists()


def test_an_existing_file_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keep.bdf"
    path.write_bytes(b"precious")
    with pytest.raises(RecordingError, match="cannot create: EEXIST"):
        BdfSessionWriter(path, _header())
    assert path.read_bytes() == b"precious"


def test_bad_frames_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with BdfSessionWriter(tmp_path / "f.bdf", _header(2), sync=False) as writer:
        with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
            writer.write_frames(np.zeros((5, 3)), 0)
        with pytest.raises(ValueError, match="non-finite"):
            writer.write_frames(np.full((5, 2), np.nan), 0)
        writer.write_frames(np.zeros((5, 2)), 10)
        with pytest.raises(ValueError, match="goes back"):
            writer.write_frames(np.zeros((5, 2)), 12)
        assert writer.frames_written == 5


def test_full_disk_is_one_recording_error_and_the_file_so_far_reads(tmp_path: Path) -> None:
    path = tmp_path / "full.bdf"
    budget = {"bytes": 0}
    limit_holder: dict[str, int] = {}

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        end = os.fstat(fd).st_size
        if "limit" in limit_holder and max(end, offset + len(data)) > limit_holder["limit"]:
            room = max(0, limit_holder["limit"] - offset)
            if room == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            data = data[:room]
        budget["bytes"] += len(data)
        return os.pwrite(fd, data, offset)

    writer = BdfSessionWriter(path, _header(2), pwrite=pwrite)
    x = _emg(RATE_HZ * 3, 2)
    writer.cue(0.5, "pinch", 0.3, 1, "start")
    writer.write_frames(x[: RATE_HZ * 2], 0)
    limit_holder["limit"] = os.path.getsize(path) + 1000  # the third record does not fit
    with pytest.raises(RecordingError) as info:
        writer.write_frames(x[RATE_HZ * 2 :], RATE_HZ * 2)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "ENOSPC" in message
    assert "data record 2" in message and "holds the 2 whole seconds" in message
    with pytest.raises(RecordingError):  # later calls repeat the error, nothing half-done
        writer.write_frames(x[:1], RATE_HZ * 3)
    writer.close()
    with pyedflib.EdfReader(str(path)) as reader:
        assert reader.datarecords_in_file == 2
        back = reader.readSignal(1)
    assert np.abs(back - x[: RATE_HZ * 2, 1]).max() <= ADS_RANGE.uv_per_digit
    assert (0.5, "cue gesture=pinch effort=0.3 rep=1 start") in _annotations(path)


CHILD = textwrap.dedent(
    """
    import datetime as dt, sys
    from pathlib import Path
    import numpy as np
    from emgd.data.bdf_writer import BdfSessionWriter, PhysicalRange, SessionHeader
    rate = {rate}
    header = SessionHeader(("A", "B"), rate, "simulated", PhysicalRange.ads1299(24, 4.5),
                           dt.datetime(2026, 1, 1))
    writer = BdfSessionWriter(Path(sys.argv[1]), header)
    k = 0
    while True:
        writer.cue(k + 0.25, "power", 1, k, "start")
        frames = np.arange(k * rate, (k + 1) * rate, dtype=np.float64)
        writer.write_frames(np.stack([frames % 1000, -(frames % 1000)], axis=1), k * rate)
        k += 1
        print(writer.records_written, flush=True)
    """
)


def test_sigkill_mid_session_leaves_whole_seconds_readable(tmp_path: Path) -> None:
    import mne

    path = tmp_path / "killed.bdf"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(rate=RATE_HZ))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    reported = 0
    while reported < 4:
        line = proc.stdout.readline()
        assert line, "the writer process ended early"
        reported = int(line)
    proc.send_signal(signal.SIGKILL)  # while it keeps writing, at no chosen moment
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    with pyedflib.EdfReader(str(path)) as reader:
        n_records = reader.datarecords_in_file
        a = reader.readSignal(0)
    assert n_records >= reported
    frames = np.arange(n_records * RATE_HZ)
    assert np.abs(a - frames % 1000).max() <= ADS_RANGE.uv_per_digit
    cues = [(o, t) for o, t in _annotations(path) if t.startswith("cue")]
    assert cues == [
        (k + 0.25, f"cue gesture=power effort=1 rep={k} start") for k in range(n_records)
    ]
    raw = mne.io.read_raw_bdf(path, verbose="error")
    # A kill between a record's append and the header's count update leaves one whole record
    # past the count: pyedflib stops at the count, MNE reads the record from the file's size.
    mne_records = raw.n_times // RATE_HZ
    assert raw.n_times % RATE_HZ == 0 and mne_records in (n_records, n_records + 1)
    assert len([d for d in raw.annotations.description if d.startswith("cue")]) == mne_records


def test_a_larger_annotation_signal_keeps_many_gaps_beside_their_data(tmp_path: Path) -> None:
    import mne

    x = _emg(3 * RATE_HZ, 2)
    files = {}
    for samples in (200, 2000):
        path = tmp_path / f"a{samples}.bdf"
        with BdfSessionWriter(path, _header(2, annotation_samples=samples), sync=False) as w:
            seq = 0
            for k in range(0, x.shape[0], 10):  # a 1-frame gap after every 10 frames
                w.write_frames(x[k : k + 10], seq)
                seq += 11
        files[samples] = path
    with pyedflib.EdfReader(str(files[200])) as reader:
        small_records = reader.datarecords_in_file
    with pyedflib.EdfReader(str(files[2000])) as reader:
        assert reader.datarecords_in_file == 4  # 3 s and the one carrying "session end"
        big_texts = reader.readAnnotations()[2]
    assert small_records > 4  # 300 gaps do not fit 600 bytes a second: padding carries them
    assert sum(t.startswith("gap frames=1 ") for t in big_texts) == x.shape[0] // 10 - 1
    raw = mne.io.read_raw_bdf(files[2000], verbose="error")
    assert raw.n_times == 4 * RATE_HZ
    assert np.abs(raw.get_data()[0, : x.shape[0]] * 1e6 - x[:, 0]).max() <= ADS_RANGE.uv_per_digit


def test_annotation_room_out_of_bounds_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="annotation_samples 10 must be"):
        BdfSessionWriter(tmp_path / "x.bdf", _header(2, annotation_samples=10))
    assert not (tmp_path / "x.bdf").exists()
