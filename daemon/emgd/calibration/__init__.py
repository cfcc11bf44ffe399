"""Per-wearer calibration: the guided session that measures it and the store that keeps it.

Owns :mod:`~emgd.calibration.session` (rest and effort phases, run inside the daemon between
hops) and :mod:`~emgd.calibration.store` (versioned files in the state directory, written
atomically, a corrupt file named in the error). It may import the DSP stages and the base
modules; the service and the offline side import it, never the other way round.
"""
