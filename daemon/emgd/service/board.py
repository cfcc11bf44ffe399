"""Assemble the hardware from the config: an ADC driver on an SPI bus and the servo board
on an I²C bus, real or simulated, chosen by name.

Backends are looked up in small tables (``adc.backend``, ``adc.bus``, ``servo.bus``) and
imported only when selected, so a laptop without ``spidev`` or ``RPi.GPIO`` runs the
simulated board, and a missing Pi package is a :class:`~emgd.errors.MissingDependencyError`
naming the extra to install. The simulated board wires the *same* drivers to the chip
simulators, fed by the synthetic wearer. This module builds objects; it runs no loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from emgd.clock import Clock, SystemClock
from emgd.config import FINGERS, Config
from emgd.errors import ConfigError
from emgd.hw.interfaces import AdcDriver, I2CBus, SpiBus

if TYPE_CHECKING:
    from emgd.hw.pca9685 import ServoBoard
    from emgd.hw.servo_math import ServoCalibration
    from emgd.sim.hand import SimHand
    from emgd.sim.i2c_bus import SimI2CBus
    from emgd.sim.pca9685_sim import Pca9685Sim
    from emgd.sim.prefetch import PrefetchedSource
    from emgd.sim.synthetic_emg import SyntheticEmg
    from emgd.sim.trajectory import Trajectory

#: SPI mode and the simulator's chip per ADC backend.
ADS1299_SPI_MODE = 1
MCP3008_SPI_MODE = 0


@dataclass
class AdcSide:
    """The opened ADC and, on the simulated board, what feeds it."""

    adc: AdcDriver
    description: str
    wearer: SyntheticEmg | PrefetchedSource | None = None
    chip: object = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Stop conversions and close the bus (and the wearer's child process)."""
        try:
            self.adc.stop()
        finally:
            self.adc.close()
            for closer in reversed(self._closers):
                closer()


@dataclass
class ServoSide:
    """The opened servo board and, on the simulated board, the chip and the hand."""

    servos: ServoBoard
    description: str
    pca: Pca9685Sim | None = None
    hand: SimHand | None = None
    sim_bus: SimI2CBus | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self, *, release_servos: bool = False) -> None:
        """Close the bus; the PCA9685 keeps its last pulses unless ``release_servos``."""
        try:
            self.servos.close(release=release_servos)
        finally:
            for closer in reversed(self._closers):
                closer()


@dataclass
class SimulatedParts:
    """The far side of the simulated buses, for the live view and the tests."""

    wearer: SyntheticEmg | PrefetchedSource
    adc_chip: object
    pca: Pca9685Sim
    hand: SimHand


@dataclass
class Board:
    """The opened hardware in one process: one ADC side and one servo side."""

    adc_side: AdcSide
    servo_side: ServoSide
    sim: SimulatedParts | None = None

    @property
    def adc(self) -> AdcDriver:
        return self.adc_side.adc

    @property
    def servos(self) -> ServoBoard:
        return self.servo_side.servos

    @property
    def description(self) -> str:
        return f"{self.adc_side.description}; {self.servo_side.description}"

    def close(self, *, release_servos: bool = False) -> None:
        """Stop acquisition and close the buses; the servos keep their pulses by default."""
        try:
            self.adc_side.close()
        finally:
            self.servo_side.close(release_servos=release_servos)


def servo_calibrations(config: Config) -> tuple[ServoCalibration, ...]:
    """The five per-finger servo calibrations from ``[servo.<finger>]``, in finger order."""
    from emgd.hw.servo_math import ServoCalibration

    cals = []
    for finger, s in zip(FINGERS, config.servo.fingers(), strict=True):
        try:
            cals.append(
                ServoCalibration(
                    channel=s.channel,
                    min_pulse_us=s.min_pulse_us,
                    max_pulse_us=s.max_pulse_us,
                    inverted=s.inverted,
                    trim_deg=s.trim_deg,
                    min_angle_deg=s.min_angle_deg,
                    max_angle_deg=s.max_angle_deg,
                )
            )
        except ConfigError as exc:
            raise ConfigError(f"{config.source}: [servo.{finger}]: {exc}") from None
    return tuple(cals)


def open_board(
    config: Config,
    clock: Clock,
    *,
    trajectory: Trajectory | None = None,
    prefetch: bool | None = None,
) -> Board:
    """Open both sides in this process (nothing is started); see :func:`open_adc_side`."""
    adc_side = open_adc_side(config, clock, trajectory=trajectory, prefetch=prefetch)
    try:
        servo_side = open_servo_side(config, clock)
    except BaseException:
        adc_side.close()
        raise
    sim = None
    if adc_side.wearer is not None and servo_side.pca is not None:
        assert servo_side.hand is not None
        sim = SimulatedParts(
            wearer=adc_side.wearer,
            adc_chip=adc_side.chip,
            pca=servo_side.pca,
            hand=servo_side.hand,
        )
    return Board(adc_side=adc_side, servo_side=servo_side, sim=sim)


def open_adc_side(
    config: Config,
    clock: Clock,
    *,
    trajectory: Trajectory | None = None,
    prefetch: bool | None = None,
) -> AdcSide:
    """Open and initialise the ADC that ``config`` names (conversions not started).

    Parameters
    ----------
    config:
        The validated configuration.
    clock:
        Passed to the driver and the simulator.
    trajectory:
        What the simulated wearer does (default: ``[simulation] wearer`` until cued, then a
        person following the cues, :func:`emgd.sim.cued.build_wearer`).
    prefetch:
        Render the simulated wearer's EMG in a child process ahead of time
        (:class:`~emgd.sim.prefetch.PrefetchedSource`, same samples) instead of in the
        thread that reads the simulated chip. Default: only on the real-time
        :class:`~emgd.clock.SystemClock`, where rendering would cost lost frames.
    """
    closers: list[Callable[[], None]] = []
    wearer = None
    chip: object = None
    try:
        if config.adc.bus == "simulated":
            if prefetch is None:
                prefetch = isinstance(clock, SystemClock)
            wearer = _synthetic_wearer(config, trajectory, prefetch=prefetch)
            from emgd.sim.prefetch import PrefetchedSource

            if isinstance(wearer, PrefetchedSource):
                closers.append(wearer.close)  # stops the child process
            spi, chip, drdy = _simulated_spi(config, clock, wearer)
            spi_text = "simulated SPI"
        else:
            spi = _linux_spi(config)
            closers.append(spi.close)
            drdy = None
            spi_text = f"/dev/spidev{config.adc.spi_bus}.{config.adc.spi_device}"
        adc, adc_text = _open_adc(config, clock, spi, drdy)
    except BaseException:
        for closer in reversed(closers):
            closer()
        raise
    return AdcSide(
        adc=adc,
        description=f"{adc_text} on {spi_text}",
        wearer=wearer,
        chip=chip,
        _closers=closers,
    )


def open_servo_side(config: Config, clock: Clock) -> ServoSide:
    """Open the PCA9685 servo board that ``config`` names (programs its frequency)."""
    closers: list[Callable[[], None]] = []
    try:
        servos, pca_sim, i2c_text, sim_bus = _open_servos(config, clock, closers)
    except BaseException:
        for closer in reversed(closers):
            closer()
        raise
    hand = None
    if pca_sim is not None:
        from emgd.sim.hand import SimHand

        hand = SimHand(
            pca_sim, clock, servos.servos, speed_deg_s=config.simulation.hand_speed_deg_s
        )
    description = (
        f"PCA9685 at 0x{config.servo.address:02X} on {i2c_text}, {servos.frequency_hz:.2f} Hz"
    )
    return ServoSide(
        servos=servos,
        description=description,
        pca=pca_sim,
        hand=hand,
        sim_bus=sim_bus,
        _closers=closers,
    )


# --------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------


def _open_servos(
    config: Config, clock: Clock, closers: list[Callable[[], None]]
) -> tuple[ServoBoard, Pca9685Sim | None, str, SimI2CBus | None]:
    from emgd.hw.pca9685 import ServoBoard

    pca_sim = None
    sim_bus = None
    if config.servo.bus == "simulated":
        from emgd.sim.i2c_bus import SimI2CBus
        from emgd.sim.pca9685_sim import Pca9685Sim

        pca_sim = Pca9685Sim(clock=clock)
        sim_bus = SimI2CBus()
        sim_bus.attach(config.servo.address, pca_sim)
        i2c: I2CBus = sim_bus
        i2c_text = "simulated I²C"
    else:
        from emgd.hw.i2c_smbus import SMBus2I2C

        real_bus = SMBus2I2C(config.servo.i2c_bus)
        closers.append(real_bus.close)
        i2c = real_bus
        i2c_text = f"/dev/i2c-{config.servo.i2c_bus}"
    servos = ServoBoard(
        i2c,
        servo_calibrations(config),
        address=config.servo.address,
        frequency_hz=config.servo.frequency_hz,
    )
    return servos, pca_sim, i2c_text, sim_bus


def _synthetic_wearer(
    config: Config, trajectory: Trajectory | None, *, prefetch: bool
) -> SyntheticEmg | PrefetchedSource:
    from emgd.sim.cued import build_wearer
    from emgd.sim.prefetch import PrefetchedSource, SyntheticEmgSpec
    from emgd.sim.trajectory import PoseSequence

    sim = config.simulation
    if trajectory is None:  # idle as configured, then a person following the cues
        trajectory = build_wearer(sim.wearer, sim.seed, PoseSequence(sim.seed))
    spec = SyntheticEmgSpec(
        trajectory,
        n_channels=config.adc.channels,
        seed=sim.seed,
        mains_hz=sim.mains_hz,
    )
    if not prefetch:
        return spec.build()
    # The rate the simulated chip will ask for: the ADC rate (the ADS1299's periods are
    # whole nanoseconds), or the MCP3008 simulator's analogue source rate.
    if config.adc.backend == "ads1299":
        rate_hz = float(config.adc.sample_rate_hz)
    else:
        from emgd.sim.mcp3008_sim import DEFAULT_SOURCE_RATE_HZ

        rate_hz = DEFAULT_SOURCE_RATE_HZ
    return PrefetchedSource(spec, sample_rate_hz=rate_hz)


def _simulated_spi(
    config: Config, clock: Clock, wearer: SyntheticEmg | PrefetchedSource
) -> tuple[SpiBus, object, object]:
    from emgd.sim.spi_bus import SimSpiDev

    if config.adc.backend == "ads1299":
        from emgd.sim.ads1299_sim import Ads1299Sim

        chip = Ads1299Sim(
            wearer, clock, device_id=config.simulation.chip_id, seed=config.simulation.seed
        )
        return SimSpiDev(chip), chip, chip.drdy_line()
    from emgd.sim.mcp3008_sim import Mcp3008Sim

    mcp = config.adc.mcp3008
    mcp_chip = Mcp3008Sim(
        wearer,
        clock,
        vref_v=mcp.vref_v,
        offset_v=mcp.offset_v,
        frontend_gain=mcp.frontend_gain,
        vdd_v=mcp.vdd_v,
    )
    return SimSpiDev(mcp_chip), mcp_chip, None


def _linux_spi(config: Config) -> SpiBus:
    from emgd.hw.spi import open_spidev

    mode = ADS1299_SPI_MODE if config.adc.backend == "ads1299" else MCP3008_SPI_MODE
    return open_spidev(
        config.adc.spi_bus,
        config.adc.spi_device,
        mode=mode,
        max_speed_hz=(
            config.adc.ads1299.spi_speed_hz
            if config.adc.backend == "ads1299"
            else config.adc.mcp3008.spi_speed_hz
        ),
    )


def _open_adc(config: Config, clock: Clock, spi: SpiBus, sim_drdy: object) -> tuple[AdcDriver, str]:
    opener = _ADC_BACKENDS[config.adc.backend]
    return opener(config, clock, spi, sim_drdy)


def _open_ads1299(
    config: Config, clock: Clock, spi: SpiBus, sim_drdy: object
) -> tuple[AdcDriver, str]:
    from emgd.hw.ads1299 import Ads1299, Ads1299ChannelSettings, Ads1299Settings
    from emgd.hw.interfaces import DrdyLine

    a = config.adc.ads1299
    channel = Ads1299ChannelSettings(
        gain=a.gain,
        input="test" if a.test_signal else "normal",
        srb2=a.srb2,
        bias=a.bias_drive,
        lead_off=a.lead_off,
    )
    settings = Ads1299Settings(
        sample_rate_hz=config.adc.sample_rate_hz,
        channels=(channel,) * config.adc.channels,
        srb1=a.srb1,
        bias_drive=a.bias_drive,
        lead_off_current_na=a.lead_off_current_na,
        test_signal=a.test_signal,
        vref_v=a.vref_v,
        spi_speed_hz=a.spi_speed_hz,
    )
    if sim_drdy is not None:
        drdy: DrdyLine = sim_drdy  # type: ignore[assignment]
    else:
        from emgd.hw.drdy import open_drdy

        drdy = open_drdy(a.drdy, pin=a.drdy_gpio, chip=a.drdy_chip)
    adc = Ads1299(spi, drdy, clock, settings)
    adc.initialize()
    text = (
        f"ADS1299 (ID 0x{adc.device_id:02X}, {adc.chip_channels}-channel part, "
        f"{adc.n_channels} used, {adc.sample_rate_hz:g} Hz, gain {a.gain})"
    )
    return adc, text


def _open_mcp3008(
    config: Config, clock: Clock, spi: SpiBus, sim_drdy: object
) -> tuple[AdcDriver, str]:
    from emgd.hw.mcp3008 import Mcp3008, Mcp3008Settings

    m = config.adc.mcp3008
    n = config.adc.channels
    inputs: tuple[int | str, ...] = (
        tuple(f"{2 * i}-{2 * i + 1}" for i in range(n)) if m.differential else tuple(range(n))
    )
    settings = Mcp3008Settings(
        sample_rate_hz=float(config.adc.sample_rate_hz),
        inputs=inputs,
        vref_v=m.vref_v,
        offset_v=m.offset_v,
        frontend_gain=m.frontend_gain,
        spi_speed_hz=m.spi_speed_hz,
        spi_mode=MCP3008_SPI_MODE,
        vdd_v=m.vdd_v,
    )
    adc = Mcp3008(spi, clock, settings)
    kind = "differential pairs" if m.differential else "single-ended inputs"
    return adc, f"MCP3008 ({n} {kind}, {config.adc.sample_rate_hz} Hz)"


_ADC_BACKENDS: dict[str, Callable[[Config, Clock, SpiBus, object], tuple[AdcDriver, str]]] = {
    "ads1299": _open_ads1299,
    "mcp3008": _open_mcp3008,
}
