"""The daemon's runtime: what ``emgd run`` (and ``emgd monitor``) are while they run.

Owns the start-up order and the hop loop (:mod:`~emgd.service.runner`), the acquisition
process and its shared-memory frame ring, when the loop wakes, per-stage latency, the safety
gate, the status socket's server, sd_notify, and building the board (drivers and buses, real or
simulated) from the config. It composes the stages (:mod:`emgd.pipeline`, :mod:`emgd.hw`,
:mod:`emgd.sim`, :mod:`emgd.model`, :mod:`emgd.calibration`); it may import those and the base
modules (config, errors, clock, poses, logsetup), never the clients, the offline side or the CLI.
"""
