"""Tests of emgd.model.spec: seed figures, dilations across rates, counts, validation, JSON."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgd.errors import ConfigError
from emgd.model.spec import (
    DEFAULT_BRANCHES,
    DILATION_SEARCH_STEPS,
    SILENCE_KERNEL,
    BranchSpec,
    ModelSpec,
    Stage2Spec,
    choose_dilations,
    seed_dilations,
)

# Receptive fields of the seed network at 1 kHz as the model notes count them (samples).
SEED_RF_1KHZ = {"type_I": 691, "type_IIa": 586, "type_IIb": 1435, "silence": 583}
TEST_RATES_HZ = (500.0, 1000.0, 2000.0, 4000.0)


# ----------------------------------------------------------------------------- seed values


def test_defaults_follow_the_design_table() -> None:
    spec = ModelSpec()
    rows = [(b.name, b.char_freq_hz, b.kernel, b.layers, b.stride, b.dilate) for b in spec.branches]
    assert rows == [
        ("type_I", 30.0, 15, 4, 1, True),
        ("type_IIa", 100.0, 10, 4, 1, True),
        ("type_IIb", 225.0, 7, 4, 2, True),
        ("silence", None, 7, 4, 2, False),
    ]
    assert spec.branches[3].fixed_first_kernel == (-1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0)
    assert all(b.fixed_first_kernel is None for b in spec.branches[:3])
    assert spec.stage2 == Stage2Spec(kernel=10, dilations=(10, 20), strides=(1, 2, 3, 1))
    assert spec.stage2.features == 4
    assert (spec.common_length, spec.mlp, spec.n_outputs, spec.history) == (50, (128, 64), 5, 2)
    assert spec.angle_range_deg == (0.0, 180.0)


@pytest.mark.parametrize(
    ("fs_hz", "f_hz", "k", "expected"),
    [
        (1000.0, 30.0, 15, (2, 4, 8, 16)),  # 1000/450 = 2.22 -> 2
        (1000.0, 100.0, 10, (1, 2, 4, 8)),  # 1000/1000 = 1
        (1000.0, 225.0, 7, (1, 2, 4, 8)),  # 1000/1575 = 0.63 -> 1
        (500.0, 225.0, 7, (1, 2, 4, 8)),  # 0.32 -> 0 -> at least 1
        (4000.0, 30.0, 15, (9, 18, 36, 72)),  # 8.89 -> 9
        (1000.0, 40.0, 10, (3, 6, 12, 24)),  # 2.5 rounds half up to 3
        (1000.0, None, 7, (1, 1, 1, 1)),
    ],
)
def test_seed_dilation_formula(
    fs_hz: float, f_hz: float | None, k: int, expected: tuple[int, ...]
) -> None:
    assert seed_dilations(fs_hz, f_hz, k, 4) == expected


def test_seed_receptive_fields_at_1khz() -> None:
    spec = ModelSpec(sample_rate_hz=1000.0)
    assert spec.receptive_fields_samples() == SEED_RF_1KHZ
    assert spec.receptive_fields_ms() == pytest.approx(
        {"type_I": 691.0, "type_IIa": 586.0, "type_IIb": 1435.0, "silence": 583.0}
    )
    dilations = {p.name: (p.stage1_dilations, p.stage2_dilations) for p in spec.plans}
    assert dilations == {
        "type_I": ((2, 4, 8, 16), (10, 20)),
        "type_IIa": ((1, 2, 4, 8), (10, 20)),
        "type_IIb": ((1, 2, 4, 8), (10, 20)),
        "silence": ((1, 1, 1, 1), (10, 20)),
    }


def test_strides_sit_on_the_first_layer_of_each_stage() -> None:
    plan = ModelSpec().plan("type_IIb")
    assert [layer.stride for layer in plan.layers] == [2, 1, 1, 1, 3, 1]
    assert [layer.relu for layer in plan.layers] == [False, True, True, True, True, True]
    assert [(layer.in_features, layer.out_features) for layer in plan.layers] == [
        (1, 1),
        (1, 1),
        (1, 1),
        (1, 1),
        (1, 4),
        (4, 4),
    ]
    assert plan.total_stride == 6


def test_min_window_covers_every_branch_plus_t_steps() -> None:
    spec = ModelSpec()
    # R + (T - 1)·S: 691 + 49, 586 + 49·2, 1435 + 49·6, 583 + 49·2.
    assert [p.input_samples(50) for p in spec.plans] == [740, 684, 1729, 681]
    assert spec.min_window_samples == 1729
    assert spec.window_samples == 1729
    assert spec.hop_samples == 20
    assert ModelSpec(common_length=10).min_window_samples == 1435 + 9 * 6


# ----------------------------------------------------------------------------- across rates


def test_lattice_steps_of_the_seed_branches() -> None:
    # gcd of (k - 1)·P over the rate-scaled layers: type I gcd(14, 9); type IIa gcd(9, 18);
    # type IIb gcd(6, 12, 18, 54); silence only stage 2: gcd(18, 18).
    steps = {p.name: p.lattice_step_samples for p in ModelSpec().plans}
    assert steps == {"type_I": 1, "type_IIa": 9, "type_IIb": 6, "silence": 18}


@pytest.mark.parametrize("fs_hz", TEST_RATES_HZ)
@pytest.mark.parametrize("name", list(SEED_RF_1KHZ))
def test_receptive_field_in_ms_is_constant_across_rates(fs_hz: float, name: str) -> None:
    plan = ModelSpec(sample_rate_hz=fs_hz).plan(name)
    sample_ms = 1000.0 / fs_hz
    # One sample, or half the step R can move in where that step is larger (see spec.py).
    tolerance_samples = max(1.0, plan.lattice_step_samples / 2)
    error_ms = plan.receptive_field_ms - SEED_RF_1KHZ[name]
    assert abs(error_ms) <= tolerance_samples * sample_ms + 1e-9


@pytest.mark.parametrize("fs_hz", TEST_RATES_HZ)
def test_type_i_receptive_field_within_one_sample(fs_hz: float) -> None:
    plan = ModelSpec(sample_rate_hz=fs_hz).plan("type_I")
    assert abs(plan.receptive_field_samples - 691 * fs_hz / 1000.0) <= 1.0


def test_rescaled_dilations_at_double_rate() -> None:
    plan = ModelSpec(sample_rate_hz=2000.0).plan("type_IIb")
    # Everything doubles: 1 + 6·(2 + 2·(4 + 8 + 16)) + 9·2·20 + 9·2·3·40 = 2869 (1434.5 ms).
    assert plan.stage1_dilations == (2, 4, 8, 16)
    assert plan.stage2_dilations == (20, 40)
    assert plan.receptive_field_samples == 2869


def test_silence_keeps_dilation_one_in_stage_1_at_every_rate() -> None:
    for fs_hz in (*TEST_RATES_HZ, 16000.0):
        plan = ModelSpec(sample_rate_hz=fs_hz).plan("silence")
        assert plan.stage1_dilations == (1, 1, 1, 1)
    # At 4 kHz stage 2 makes up for it: 1 + 42 + 18·(42 + 85) = 2329, target 2332.
    assert ModelSpec(sample_rate_hz=4000.0).plan("silence").receptive_field_samples == 2329


@given(fs_hz=st.floats(min_value=300.0, max_value=16000.0))
@settings(max_examples=40, deadline=None)
def test_receptive_field_tracks_duration_at_any_rate(fs_hz: float) -> None:
    spec = ModelSpec(sample_rate_hz=fs_hz)
    for plan in spec.plans:
        target = SEED_RF_1KHZ[plan.name] * fs_hz / 1000.0
        tolerance = max(1.0, plan.lattice_step_samples / 2)
        assert abs(plan.receptive_field_samples - target) <= tolerance + 1e-9


@given(
    layers=st.lists(
        st.tuples(
            st.floats(min_value=0.3, max_value=12.0),
            st.integers(min_value=1, max_value=30),
            st.booleans(),
        ),
        min_size=1,
        max_size=4,
    ),
    target=st.floats(min_value=0.0, max_value=600.0),
)
@settings(max_examples=60, deadline=None)
def test_choose_dilations_reaches_the_best_span(
    layers: list[tuple[float, int, bool]], target: float
) -> None:
    ideal = [want if free else float(round(want)) or 1.0 for want, _, free in layers]
    coefficients = [c for _, c, _ in layers]
    free = [f for _, _, f in layers]
    chosen = choose_dilations(ideal, coefficients, free, target)
    # Exhaustive oracle over the same candidate sets.
    options = []
    for want, is_free in zip(ideal, free, strict=True):
        if is_free:
            low = max(1, math.floor(want) - DILATION_SEARCH_STEPS)
            options.append(range(low, math.ceil(want) + DILATION_SEARCH_STEPS + 1))
        else:
            options.append(range(int(want), int(want) + 1))
    best = min(
        abs(sum(c * d for c, d in zip(coefficients, combo, strict=True)) - target)
        for combo in itertools.product(*options)
    )
    got = abs(sum(c * d for c, d in zip(coefficients, chosen, strict=True)) - target)
    assert got == pytest.approx(best)
    assert all(d >= 1 for d in chosen)
    assert [d for d, f, w in zip(chosen, free, ideal, strict=True) if not f] == [
        int(w) for f, w in zip(free, ideal, strict=True) if not f
    ]


def test_choose_dilations_prefers_the_ideal_when_exact() -> None:
    assert choose_dilations([2.0, 4.0, 8.0], [14, 14, 14], [True] * 3, 14 * 14) == (2, 4, 8)


# ----------------------------------------------------------------------------- counts


def test_parameter_count_by_hand() -> None:
    spec = ModelSpec()
    # Stage 1: type I 4·(15+1), IIa 4·(10+1), IIb 4·(7+1), silence 3·(7+1) (fixed first layer).
    # Stage 2 per branch: (4·1·10 + 4) + (4·4·10 + 4) = 208.
    # MLP: (8·4·4·50 + 10)·128 + 128, 128·64 + 64, 64·5 + 5.
    assert spec.parameter_breakdown() == {
        "stage1": 64 + 44 + 32 + 24,
        "stage2": 4 * 208,
        "mlp": 6410 * 128 + 128 + 128 * 64 + 64 + 64 * 5 + 5,
    }
    assert spec.parameter_count() == 830_185
    assert spec.fixed_weight_count() == 7
    assert spec.mlp_sizes == (6410, 128, 64, 5)


def test_macs_by_hand_for_one_branch() -> None:
    spec = ModelSpec(branches=(DEFAULT_BRANCHES[0],), stage2=Stage2Spec(strides=(1,)))
    # Type I at 1 kHz, input 740: lengths 712, 656, 544, 320 (k 15, d 2 4 8 16), then
    # 230 (k 10, d 10, 1 -> 4) and 50 (d 20, 4 -> 4).
    stage1 = 8 * 15 * (712 + 656 + 544 + 320)
    stage2 = 8 * (230 * 4 * 1 * 10 + 50 * 4 * 4 * 10)
    mlp = (8 * 4 * 50 + 10) * 128 + 128 * 64 + 64 * 5
    assert spec.macs_breakdown() == {"stage1": stage1, "stage2": stage2, "mlp": mlp}
    assert spec.macs_per_inference() == 267_840 + 137_600 + 214_592


def test_macs_do_not_depend_on_a_longer_window() -> None:
    spec = ModelSpec()
    assert ModelSpec(window_s=3.0).macs_per_inference() == spec.macs_per_inference()
    assert ModelSpec(window_s=3.0).window_samples == 3000


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"sample_rate_hz": 50.0}, "sample_rate_hz = 50.0 is out of range"),
        ({"n_channels": 0}, "n_channels = 0 is out of range 1..64"),
        ({"n_channels": 2.0}, "n_channels = 2.0 must be an integer"),
        ({"common_length": True}, "common_length = True must be an integer"),
        ({"mlp": (128, 0)}, "mlp[1] = 0 is out of range"),
        ({"angle_range_deg": (180.0, 0.0)}, "needs lo < hi"),
        ({"window_s": 1.5}, "window_s = 1.5 s is 1500 samples at 1000 Hz, shorter than the 1729"),
        ({"hop_s": 0.0004}, "less than one sample"),
        ({"hop_s": 3.0}, "longer than the window"),
        ({"dropout": 1.0}, "dropout = 1.0 is out of range"),
        ({"band_amplitude_s": 0.0}, "band_amplitude_s = 0.0 is out of range"),
        ({"band_amplitude_s": "0.2"}, "band_amplitude_s = '0.2' must be a number"),
        ({"stage2": Stage2Spec(strides=(1, 2))}, "stage2.strides has 2 entries for 4 branches"),
        ({"branches": (DEFAULT_BRANCHES[0], DEFAULT_BRANCHES[0])}, "branch names repeat: type_I"),
        ({"branches": ()}, "0 branches"),
    ],
)
def test_bad_spec_values_are_named(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match="model spec") as info:
        ModelSpec(**changes)  # type: ignore[arg-type]
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "bad name", "char_freq_hz": 30.0, "kernel": 5}, "must be an identifier"),
        ({"name": "b", "char_freq_hz": 30.0, "kernel": 1}, "branch 'b': kernel = 1 is out of"),
        ({"name": "b", "char_freq_hz": None, "kernel": 5}, "dilate is true but char_freq_hz"),
        ({"name": "b", "char_freq_hz": 0.0, "kernel": 5}, "char_freq_hz = 0.0 is out of range"),
        (
            {"name": "b", "char_freq_hz": 30.0, "kernel": 5, "dilate": False},
            "char_freq_hz = 30.0 is set but dilate is false",
        ),
        (
            {"name": "b", "char_freq_hz": None, "kernel": 5, "dilate": False,
             "fixed_first_kernel": SILENCE_KERNEL},
            "fixed_first_kernel has 7 taps, kernel is 5",
        ),
        ({"name": "b", "char_freq_hz": 30.0, "kernel": 5, "stride": 0}, "stride = 0"),
    ],
)  # fmt: skip
def test_bad_branch_values_are_named(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        BranchSpec(**kwargs)  # type: ignore[arg-type]
    assert fragment in str(info.value)


def test_unknown_branch_is_named() -> None:
    with pytest.raises(ConfigError, match=r"no branch named 'type_III' \(branches: type_I,"):
        ModelSpec().plan("type_III")


def test_spec_is_frozen_and_hashable() -> None:
    spec = ModelSpec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.n_channels = 4  # type: ignore[misc]
    assert hash(spec) == hash(ModelSpec())
    assert spec == ModelSpec(sample_rate_hz=1000)


# ----------------------------------------------------------------------------- JSON


def test_to_dict_is_plain_json() -> None:
    data = ModelSpec().to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["version"] == 1
    assert data["branches"][3] == {
        "name": "silence",
        "char_freq_hz": None,
        "kernel": 7,
        "layers": 4,
        "stride": 2,
        "dilate": False,
        "fixed_first_kernel": [-1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0],
    }
    assert data["stage2"] == {"kernel": 10, "dilations": [10, 20], "strides": [1, 2, 3, 1],
                              "features": 4}  # fmt: skip


def test_from_dict_fills_defaults() -> None:
    assert ModelSpec.from_dict({"n_channels": 10}) == ModelSpec(n_channels=10)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"n_chanels": 8}, "unknown key 'n_chanels'"),
        ({"version": 2}, "version = 2 is not supported"),
        ({"branches": "type_I"}, "branches = 'type_I' must be a list"),
        ({"branches": [{"name": "a", "kernel": 5, "colour": 1}]}, "branches[0]: unknown key"),
        ({"branches": [{"name": "a"}]}, "branches[0]: needs at least 'name' and 'kernel'"),
        ({"stage2": {"kernal": 10}}, "stage2: unknown key 'kernal'"),
        ({"stage2": [10]}, "stage2: expected an object"),
        ({"mlp": 128}, "mlp = 128 must be a list"),
        ({"sample_rate_hz": "1000"}, "sample_rate_hz = '1000' must be a number"),
    ],
)
def test_from_dict_errors_name_the_key(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        ModelSpec.from_dict(data)
    assert fragment in str(info.value)


@st.composite
def specs(draw: st.DrawFn) -> ModelSpec:
    n_branches = draw(st.integers(min_value=1, max_value=4))
    branches = tuple(
        dataclasses.replace(
            base,
            kernel=draw(st.integers(min_value=2, max_value=16)) if base.fixed_first_kernel is None
            else base.kernel,
            layers=draw(st.integers(min_value=1, max_value=4)),
            stride=draw(st.integers(min_value=1, max_value=3)),
        )
        for base in DEFAULT_BRANCHES[:n_branches]
    )  # fmt: skip
    stage2 = Stage2Spec(
        kernel=draw(st.integers(min_value=2, max_value=10)),
        dilations=tuple(draw(st.lists(st.integers(1, 20), min_size=1, max_size=2))),
        strides=tuple(draw(st.integers(1, 3)) for _ in range(n_branches)),
        features=draw(st.integers(1, 6)),
    )
    lo_deg = draw(st.floats(min_value=-90.0, max_value=90.0))
    fs_hz = draw(st.sampled_from([250.0, 500.0, 1000.0, 1234.5, 2000.0]))
    # A one-sample hop fits every window; the drawn hop must fit the drawn window.
    probe = ModelSpec(
        sample_rate_hz=fs_hz,
        n_channels=draw(st.integers(1, 16)),
        branches=branches,
        stage2=stage2,
        common_length=draw(st.integers(1, 60)),
        mlp=tuple(draw(st.lists(st.integers(1, 256), max_size=3))),
        n_outputs=draw(st.integers(1, 6)),
        history=draw(st.integers(0, 3)),
        angle_range_deg=(lo_deg, lo_deg + draw(st.floats(min_value=1.0, max_value=180.0))),
        hop_s=1.0 / fs_hz,
        dropout=draw(st.sampled_from([0.0, 0.1, 0.5])),
        band_amplitude_s=draw(st.none() | st.sampled_from([0.05, 0.2, 2.5])),
    )
    extra_samples = draw(st.none() | st.integers(0, 500))
    window_s = (
        None
        if extra_samples is None
        else (probe.min_window_samples + extra_samples) / probe.sample_rate_hz
    )
    hops_s = [h for h in (0.01, 0.02, 0.05) if _hop_fits(probe, h, window_s)]
    hop_s = draw(st.sampled_from(hops_s)) if hops_s else probe.hop_s
    return dataclasses.replace(probe, hop_s=hop_s, window_s=window_s)


def _hop_fits(spec: ModelSpec, hop_s: float, window_s: float | None) -> bool:
    try:
        dataclasses.replace(spec, hop_s=hop_s, window_s=window_s)
    except ConfigError:
        return False
    return True


@given(spec=specs())
@settings(max_examples=60, deadline=None)
def test_json_round_trip(spec: ModelSpec) -> None:
    text = json.dumps(spec.to_dict())
    back = ModelSpec.from_dict(json.loads(text))
    assert back == spec
    assert back.plans == spec.plans
    assert back.window_samples >= back.min_window_samples


def test_band_amplitudes_add_one_input_per_channel_and_branch() -> None:
    plain = ModelSpec(common_length=10)
    banded = ModelSpec(common_length=10, band_amplitude_s=0.2)
    assert banded.band_feature_count == 8 * 4
    assert banded.feature_count == plain.feature_count + 32
    assert banded.mlp_sizes[0] == plain.mlp_sizes[0] + 32
    # 200 ms is 200 first-layer steps at stride 1 and 100 at stride 2 (type IIb, silence).
    assert [banded.band_steps(p) for p in banded.plans] == [200, 200, 100, 100]
    assert [plain.band_steps(p) for p in plain.plans] == [0, 0, 0, 0]
    type_i = banded.plans[0]
    assert banded.band_input_samples(type_i) == type_i.layers[0].span_samples + 200
    # A band window longer than the branches' own makes the minimum window.
    long = ModelSpec(common_length=10, band_amplitude_s=2.5)
    assert long.min_window_samples == long.plans[0].layers[0].span_samples + 1 + 2499
    assert banded.min_window_samples == plain.min_window_samples
