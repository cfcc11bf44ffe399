"""Scoring off the Pi: closed-loop evaluation, the baselines it is judged against, the metrics.

Owns :mod:`~emgd.offline.evaluate` (a model run hop by hop through :mod:`emgd.pipeline`, as the
daemon runs it), :mod:`~emgd.offline.stream` (a session's recordings as one filtered stream),
:mod:`~emgd.offline.baselines` (Hudgins features with ridge and LDA→pose) and
:mod:`~emgd.offline.metrics`. It may import the stages (data, dsp, model, pipeline) and the base
modules, never the service or the clients.
"""
