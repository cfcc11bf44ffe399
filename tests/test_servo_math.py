"""Tests for emgd.hw.servo_math: calibration rules, the angle/pulse/count maps, prescale."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emgd.errors import ConfigError
from emgd.hw.servo_math import (
    ServoCalibration,
    angle_to_pulse_us,
    counts_to_pulse_us,
    frequency_for,
    prescale_for,
    pulse_us_to_angle_deg,
    pulse_us_to_counts,
)

# 25 MHz / (4096 · 122): one count is exactly 122 / 25 = 4.88 µs.
F_50_HZ = 25e6 / (4096 * 122)
US_PER_COUNT_AT_50_HZ = 4.88


def cal(**overrides: object) -> ServoCalibration:
    fields: dict[str, object] = {"channel": 0, "min_pulse_us": 500.0, "max_pulse_us": 2500.0}
    fields.update(overrides)
    return ServoCalibration(**fields)  # type: ignore[arg-type]


# ---- calibration validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"channel": 16}, ["channel 16", "0..15"]),
        ({"channel": -1}, ["channel -1"]),
        ({"channel": True}, ["channel", "integer"]),
        ({"min_pulse_us": 200.0}, ["min_pulse_us = 200.0", "300..2700"]),
        ({"max_pulse_us": 3000.0}, ["max_pulse_us = 3000.0", "300..2700"]),
        ({"min_pulse_us": 2000.0, "max_pulse_us": 1000.0}, ["must be below", "inverted"]),
        ({"min_pulse_us": 1500.0, "max_pulse_us": 1500.0}, ["must be below"]),
        ({"min_pulse_us": math.nan}, ["min_pulse_us", "finite"]),
        ({"trim_deg": 50.0}, ["trim_deg = 50.0"]),
        ({"trim_deg": math.inf}, ["trim_deg", "finite"]),
        ({"min_angle_deg": -1.0}, ["min_angle_deg = -1.0", "0..180"]),
        ({"max_angle_deg": 181.0}, ["max_angle_deg = 181.0"]),
        ({"min_angle_deg": 90.0, "max_angle_deg": 90.0}, ["min_angle_deg = 90.0", "below"]),
        ({"inverted": 1}, ["inverted"]),
        ({"max_pulse_us": "2500"}, ["max_pulse_us", "number"]),
    ],
)
def test_bad_calibration_is_a_config_error_naming_the_field(
    overrides: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        cal(**overrides)
    for word in words:
        assert word in str(info.value)


def test_calibration_is_frozen() -> None:
    c = cal()
    with pytest.raises(AttributeError):
        c.channel = 3  # type: ignore[misc]


# ---- angle → pulse --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "angle_deg", "pulse_us"),
    [
        ({}, 0.0, 500.0),
        ({}, 90.0, 1500.0),
        ({}, 180.0, 2500.0),
        ({}, 45.0, 1000.0),
        # inverted: flexion 0° is shaft 180°
        ({"inverted": True}, 0.0, 2500.0),
        ({"inverted": True}, 45.0, 2000.0),
        ({"inverted": True}, 180.0, 500.0),
        # trim is added first: 20 + 10 = 30° → 500 + 2000·30/180
        ({"trim_deg": 10.0}, 20.0, 500.0 + 2000.0 / 6.0),
        # limits clamp after trim
        ({"min_angle_deg": 20.0, "max_angle_deg": 160.0}, 0.0, 500.0 + 2000.0 * 20 / 180),
        ({"min_angle_deg": 20.0, "max_angle_deg": 160.0}, 170.0, 500.0 + 2000.0 * 160 / 180),
        ({"trim_deg": -10.0}, 5.0, 500.0),
        ({"trim_deg": 15.0, "max_angle_deg": 150.0}, 140.0, 500.0 + 2000.0 * 150 / 180),
        # inversion after clamp: 170 → 160 → shaft 20°
        (
            {"inverted": True, "min_angle_deg": 20.0, "max_angle_deg": 160.0},
            170.0,
            500.0 + 2000.0 * 20 / 180,
        ),
        ({"min_pulse_us": 1000.0, "max_pulse_us": 2000.0}, 90.0, 1500.0),
        ({"min_pulse_us": 750.0, "max_pulse_us": 2250.0}, 60.0, 1250.0),
        # angles beyond 0..180 clamp to the default limits
        ({}, -30.0, 500.0),
        ({}, 999.0, 2500.0),
    ],
)
def test_angle_to_pulse(overrides: dict[str, object], angle_deg: float, pulse_us: float) -> None:
    assert angle_to_pulse_us(angle_deg, cal(**overrides)) == pytest.approx(pulse_us, abs=1e-9)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_angle_is_a_value_error(bad: float) -> None:
    with pytest.raises(ValueError, match="channel 3"):
        angle_to_pulse_us(bad, cal(channel=3))


def test_pulse_to_angle_inverts_without_clamping() -> None:
    assert pulse_us_to_angle_deg(1500.0, cal()) == pytest.approx(90.0)
    assert pulse_us_to_angle_deg(2000.0, cal(inverted=True)) == pytest.approx(45.0)
    assert pulse_us_to_angle_deg(500.0 + 2000.0 / 6, cal(trim_deg=10.0)) == pytest.approx(20.0)
    # beyond the end-points: no clamp
    assert pulse_us_to_angle_deg(2600.0, cal()) == pytest.approx(189.0)
    with pytest.raises(ValueError):
        pulse_us_to_angle_deg(math.nan, cal())


# ---- prescale and frequency -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency_hz", "prescale"),
    [
        (50.0, 121),  # 25e6/4096/50 = 122.07 → 122 − 1
        (200.0, 30),  # 30.52 → 31 − 1 (0x1E, the power-on value)
        (60.0, 101),  # 101.73 → 102 − 1
        (1526.0, 3),  # 4.0 → 4 − 1
        (24.0, 253),  # 254.31 → 254 − 1
    ],
)
def test_prescale_for(frequency_hz: float, prescale: int) -> None:
    assert prescale_for(frequency_hz) == prescale


def test_prescale_rounds_halves_up_like_the_library() -> None:
    # osc / (4096 · f) = 60.5 exactly: the library's int(x + 0.5) gives 61, then − 1.
    assert prescale_for(1.0, reference_clock_hz=4096 * 60.5) == 60


def test_prescale_uses_the_reference_clock() -> None:
    # 26 MHz: 26e6/4096/50 = 126.95 → 127 − 1
    assert prescale_for(50.0, reference_clock_hz=26e6) == 126


@pytest.mark.parametrize("frequency_hz", [2000.0, 23.0, 0.0, -50.0, math.nan, math.inf])
def test_unreachable_frequency_is_refused(frequency_hz: float) -> None:
    with pytest.raises(ValueError, match="frequency"):
        prescale_for(frequency_hz)


def test_frequency_for() -> None:
    assert frequency_for(121) == pytest.approx(50.028816598, rel=1e-10)
    assert frequency_for(30) == pytest.approx(25e6 / 126976, rel=1e-12)
    assert frequency_for(126, 26e6) == pytest.approx(26e6 / (4096 * 127), rel=1e-12)
    for bad in (2, 256):
        with pytest.raises(ValueError, match="PRE_SCALE"):
            frequency_for(bad)


# ---- pulse ↔ counts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pulse_us", "counts"),
    [(1000.0, 205), (1500.0, 307), (2000.0, 410), (500.0, 102), (2500.0, 512), (0.0, 0)],
)
def test_pulse_to_counts_at_50_hz(pulse_us: float, counts: int) -> None:
    assert pulse_us_to_counts(pulse_us, F_50_HZ) == counts


def test_pulse_to_counts_rejects_what_does_not_fit_a_period() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.4095"):
        pulse_us_to_counts(19990.0, F_50_HZ)  # 4096.4 counts
    with pytest.raises(ValueError):
        pulse_us_to_counts(-10.0, F_50_HZ)
    with pytest.raises(ValueError):
        pulse_us_to_counts(math.nan, F_50_HZ)
    with pytest.raises(ValueError):
        pulse_us_to_counts(1500.0, 0.0)


def test_counts_to_pulse() -> None:
    assert counts_to_pulse_us(307, F_50_HZ) == pytest.approx(307 * US_PER_COUNT_AT_50_HZ)
    assert counts_to_pulse_us(4096, F_50_HZ) == pytest.approx(4096 * US_PER_COUNT_AT_50_HZ)
    with pytest.raises(ValueError):
        counts_to_pulse_us(4097, F_50_HZ)
    with pytest.raises(ValueError):
        counts_to_pulse_us(-1, F_50_HZ)


# ---- properties -----------------------------------------------------------------------------


@st.composite
def calibrations(draw: st.DrawFn) -> ServoCalibration:
    low_us = draw(st.floats(300.0, 2000.0))
    high_us = draw(st.floats(low_us + 400.0, 2700.0))
    low_deg = draw(st.floats(0.0, 150.0))
    high_deg = draw(st.floats(low_deg + 10.0, 180.0))
    return ServoCalibration(
        channel=draw(st.integers(0, 15)),
        min_pulse_us=low_us,
        max_pulse_us=high_us,
        inverted=draw(st.booleans()),
        trim_deg=draw(st.floats(-45.0, 45.0)),
        min_angle_deg=low_deg,
        max_angle_deg=high_deg,
    )


@given(c=calibrations(), fraction=st.floats(0.0, 1.0), prescale=st.integers(60, 140))
def test_round_trip_angle_pulse_counts_angle_within_one_count(
    c: ServoCalibration, fraction: float, prescale: int
) -> None:
    frequency_hz = frequency_for(prescale)
    # an angle that stays inside the limits after trim (no clamp)
    angle_deg = c.min_angle_deg + fraction * (c.max_angle_deg - c.min_angle_deg) - c.trim_deg
    counts = pulse_us_to_counts(angle_to_pulse_us(angle_deg, c), frequency_hz)
    back_deg = pulse_us_to_angle_deg(counts_to_pulse_us(counts, frequency_hz), c)
    us_per_count = 1e6 / (4096 * frequency_hz)
    deg_per_count = 180.0 * us_per_count / (c.max_pulse_us - c.min_pulse_us)
    assert abs(back_deg - angle_deg) <= deg_per_count


@given(c=calibrations(), angle_deg=st.floats(-1e6, 1e6))
def test_pulse_always_inside_the_calibrated_window(c: ServoCalibration, angle_deg: float) -> None:
    pulse_us = angle_to_pulse_us(angle_deg, c)
    assert c.min_pulse_us - 1e-9 <= pulse_us <= c.max_pulse_us + 1e-9
    limits_us = sorted(
        angle_to_pulse_us(a - c.trim_deg, c) for a in (c.min_angle_deg, c.max_angle_deg)
    )
    assert limits_us[0] - 1e-6 <= pulse_us <= limits_us[1] + 1e-6


@given(c=calibrations(), a=st.floats(-200.0, 400.0), b=st.floats(-200.0, 400.0))
def test_mapping_is_monotonic_in_the_direction_of_the_mounting(
    c: ServoCalibration, a: float, b: float
) -> None:
    low, high = min(a, b), max(a, b)
    p_low, p_high = angle_to_pulse_us(low, c), angle_to_pulse_us(high, c)
    if c.inverted:
        assert p_low >= p_high - 1e-9
    else:
        assert p_low <= p_high + 1e-9
