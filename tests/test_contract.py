"""Tests of the preprocessing contract: round trip, validation naming the key, config checks."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgd.config import Config, load_config
from emgd.dsp.filters import FilterSpec
from emgd.errors import ModelError
from emgd.model.contract import PreprocessContract, default_channel_names
from emgd.model.spec import ModelSpec


def make_contract(**changes: Any) -> PreprocessContract:
    fields: dict[str, Any] = {
        "sample_rate_hz": 1000.0,
        "n_channels": 8,
        "channel_names": default_channel_names(8),
        "filter_spec": FilterSpec(low_hz=20.0, high_hz=450.0, order=4, mains_hz=50.0),
        "window_samples": 1729,
        "hop_samples": 20,
    }
    fields.update(changes)
    return PreprocessContract(**fields)


def config_with(*overrides: str) -> Config:
    return load_config(env={}, overrides=overrides)


def test_to_dict_is_plain_json_with_the_documented_keys() -> None:
    data = make_contract().to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "version": 1,
        "sample_rate_hz": 1000.0,
        "n_channels": 8,
        "channel_names": ["ch0", "ch1", "ch2", "ch3", "ch4", "ch5", "ch6", "ch7"],
        "filter": {
            "low_hz": 20.0,
            "high_hz": 450.0,
            "order": 4,
            "mains_hz": 50.0,
            "notch_q": 30.0,
            "notch_harmonics": False,
        },
        "window_samples": 1729,
        "hop_samples": 20,
        "normalisation": "calibration",
        "angle_range_deg": [0.0, 180.0],
        "finger_order": ["thumb", "index", "middle", "ring", "little"],
    }


@st.composite
def contracts(draw: st.DrawFn) -> PreprocessContract:
    n_channels = draw(st.integers(1, 16))
    hop = draw(st.integers(1, 100))
    return make_contract(
        sample_rate_hz=draw(st.sampled_from([500.0, 1000.0, 2000.0, 4000.0])),
        n_channels=n_channels,
        channel_names=tuple(f"e{i}" for i in range(n_channels)),
        filter_spec=FilterSpec(
            low_hz=draw(st.floats(5.0, 100.0)),
            mains_hz=draw(st.sampled_from([0.0, 50.0, 60.0])),
            notch_harmonics=draw(st.booleans()),
        ),
        window_samples=hop + draw(st.integers(0, 3000)),
        hop_samples=hop,
    )


@settings(max_examples=40, deadline=None)
@given(contract=contracts())
def test_round_trip_through_json(contract: PreprocessContract) -> None:
    back = PreprocessContract.from_dict(json.loads(json.dumps(contract.to_dict())))
    assert back == contract


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("n_channels", 0, "n_channels = 0"),
        ("window_samples", "1729", "window_samples = '1729'"),
        ("hop_samples", 5000, "hop_samples = 5000 is longer than window_samples = 1729"),
        ("normalisation", "zscore", "normalisation = 'zscore'"),
        ("angle_range_deg", [180.0, 0.0], "angle_range_deg = [180, 0] must rise"),
        ("channel_names", ["a", "a", "b", "c", "d", "e", "f", "g"], "repeated names"),
        ("channel_names", ["a", "b"], "channel_names has 2 names, n_channels = 8"),
        ("version", 2, "version = 2 is not supported"),
    ],
)
def test_bad_values_are_refused_naming_the_key(key: str, value: object, words: str) -> None:
    data = make_contract().to_dict()
    data[key] = value
    with pytest.raises(ModelError) as info:
        PreprocessContract.from_dict(data)
    assert "emgd.contract" in str(info.value)
    assert words in str(info.value)


def test_missing_and_unknown_keys_are_named() -> None:
    data = make_contract().to_dict()
    del data["hop_samples"]
    with pytest.raises(ModelError, match="missing key 'hop_samples'"):
        PreprocessContract.from_dict(data)
    data = make_contract().to_dict() | {"gain": 24}
    with pytest.raises(ModelError, match="unknown key 'gain'"):
        PreprocessContract.from_dict(data)
    with pytest.raises(ModelError, match="expected an object, got list"):
        PreprocessContract.from_dict([1, 2])


def test_bad_filter_is_refused_naming_the_filter_key() -> None:
    data = make_contract().to_dict()
    data["filter"]["mains_hz"] = 55.0
    with pytest.raises(ModelError, match=r"emgd.contract filter: FilterSpec.mains_hz = 55.0"):
        PreprocessContract.from_dict(data)
    data = make_contract().to_dict()
    data["filter"]["ripple_db"] = 1.0
    with pytest.raises(ModelError, match="filter: unknown key 'ripple_db'"):
        PreprocessContract.from_dict(data)


def test_a_filter_that_cannot_run_at_the_rate_is_refused() -> None:
    # At 100 Hz the clipped high edge is 45 Hz, so a 50 Hz low edge leaves no band.
    with pytest.raises(ModelError, match="filter at 100 Hz"):
        make_contract(sample_rate_hz=100.0, filter_spec=FilterSpec(low_hz=50.0, mains_hz=0.0))


def test_check_against_accepts_the_default_config() -> None:
    make_contract().check_against(config_with())


def test_check_against_names_both_rates() -> None:
    with pytest.raises(ModelError) as info:
        make_contract().check_against(config_with("adc.backend=mcp3008", "adc.sample_rate_hz=1500"))
    assert str(info.value) == (
        "model expects 1000 Hz or a whole multiple (decimated), config adc.sample_rate_hz = 1500"
    )


@pytest.mark.parametrize("rate_hz", [2000, 4000, 16000])
def test_check_against_accepts_whole_multiples_of_the_model_rate(rate_hz: int) -> None:
    make_contract().check_against(config_with(f"adc.sample_rate_hz={rate_hz}"))


def test_check_against_refuses_a_rate_below_the_model_rate() -> None:
    with pytest.raises(ModelError, match="model expects 1000 Hz or a whole multiple"):
        make_contract().check_against(config_with("adc.sample_rate_hz=500"))


def test_check_against_names_both_channel_counts() -> None:
    with pytest.raises(ModelError) as info:
        make_contract(n_channels=6, channel_names=default_channel_names(6)).check_against(
            config_with()
        )
    message = str(info.value)
    assert "model expects 6 channels" in message
    assert "config adc.channels = 8" in message


def test_check_layout_names_the_data_and_both_values() -> None:
    contract = make_contract()
    contract.check_layout(1000.0, 8, "dataset synthetic seed1")
    with pytest.raises(ModelError, match="model expects 8 channels, dataset 3dc P1 has 10"):
        contract.check_layout(1000.0, 10, "dataset 3dc P1")
    with pytest.raises(ModelError, match="model expects 1000 Hz, recording has 2000 Hz"):
        contract.check_layout(2000.0, 8, "recording")


def test_for_spec_copies_the_spec_and_check_spec_catches_drift() -> None:
    spec = ModelSpec(sample_rate_hz=2000.0, n_channels=3, common_length=5, mlp=(8,))
    contract = PreprocessContract.for_spec(spec, FilterSpec(mains_hz=60.0))
    assert contract.sample_rate_hz == 2000.0
    assert contract.channel_names == ("ch0", "ch1", "ch2")
    assert contract.window_samples == spec.window_samples
    assert contract.hop_samples == 40  # 20 ms at 2 kHz
    contract.check_spec(spec)
    other = dataclasses.replace(contract, window_samples=spec.window_samples + 1)
    with pytest.raises(ModelError) as info:
        other.check_spec(spec)
    assert f"window_samples = {spec.window_samples}" in str(info.value)
    assert f"says {spec.window_samples + 1}" in str(info.value)


def test_summary_lines_show_filter_and_window() -> None:
    text = "\n".join(make_contract().summary_lines())
    assert "band-pass 20-450 Hz (order 4), notch 50 Hz" in text
    assert "1729 / 20 samples (1729 / 20 ms)" in text
