"""What a recording's BDF+ header says about the device: :func:`device_header`.

This module owns the mapping from the daemon's configuration to the header of a session
file: the chip (``ads1299`` or ``mcp3008``), its settings as ``key=value`` pairs for the
``session start`` annotation, the channel labels and the physical range of a stored code
(from the ADS1299's PGA gain and reference, or from the MCP3008's reference, front-end gain
and mid-rail offset), and the protocol's description. It must not open files or know
the session's timing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from emgd import __version__
from emgd.config import Config
from emgd.data.bdf_writer import (
    ANNOTATION_SAMPLES_PER_RECORD,
    PhysicalRange,
    SessionHeader,
    default_labels,
)
from emgd.recording.protocol import Protocol

#: Annotation room per second of file, in 3-byte samples per frame per second: at 1 kHz,
#: 3000 bytes, about 90 gap texts a second (a lossy acquisition's gaps then stay beside
#: their data instead of spilling into padding seconds at the end); 1/8 of 8 channels.
ANNOTATION_SAMPLES_PER_HZ = 1.0


def device_header(config: Config, start: dt.datetime) -> SessionHeader:
    """The header of a session recorded with ``config``'s ADC, first frame at ``start``.

    The physical range is the ADC's whole input range referred to the electrodes, so every
    code it can produce is stored exactly (24-bit for the ADS1299, 10-bit codes in the
    24-bit container for the MCP3008).
    """
    adc = config.adc
    settings: dict[str, object] = {"bus": adc.bus, "emgd": __version__}
    ranges: PhysicalRange
    if adc.backend == "ads1299":
        a = adc.ads1299
        ranges = PhysicalRange.ads1299(a.gain, a.vref_v)
        settings |= {
            "gain": a.gain,
            "vref_v": a.vref_v,
            "srb2": a.srb2,
            "bias_drive": a.bias_drive,
            "lead_off": a.lead_off,
        }
    else:
        m = adc.mcp3008
        ranges = PhysicalRange.mcp3008(m.vref_v, m.frontend_gain, m.offset_v)
        settings |= {
            "vref_v": m.vref_v,
            "frontend_gain": m.frontend_gain,
            "offset_v": m.offset_v,
            "differential": m.differential,
        }
    return SessionHeader(
        channel_labels=default_labels(adc.channels),
        sample_rate_hz=float(adc.sample_rate_hz),
        device=adc.backend,
        ranges=ranges,
        start=start,
        config=settings,
        annotation_samples=max(
            ANNOTATION_SAMPLES_PER_RECORD, round(ANNOTATION_SAMPLES_PER_HZ * adc.sample_rate_hz)
        ),
    )


def protocol_fields(protocol: Protocol) -> dict[str, object]:
    """The protocol as ``key=value`` pairs for the ``session start`` annotation."""
    fields: dict[str, object] = {
        "protocol": protocol.name,
        "gestures": ",".join(protocol.gestures),
        "reps": protocol.reps,
        "hold_s": f"{protocol.hold_s:g}",
        "rest_s": f"{protocol.rest_s:g}",
        "lead_in_s": f"{protocol.lead_in_s:g}",
    }
    if protocol.efforts:
        fields["efforts"] = ",".join(f"{e:g}" for e in protocol.efforts)
    if protocol.ramps:
        fields["ramps"] = ",".join(f"{a:g}:{b:g}" for a, b in protocol.ramps)
    return fields


def session_header(
    base: SessionHeader, protocol: Protocol, start: dt.datetime, participant: str = "X"
) -> SessionHeader:
    """``base`` (from :func:`device_header`) with the session's start, wearer and protocol."""
    return dataclasses.replace(
        base,
        start=start,
        participant=participant,
        session=protocol.name,
        config={**base.config, **protocol_fields(protocol)},
    )
