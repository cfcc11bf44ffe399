"""The streaming signal chain shared by the daemon, training and evaluation.

Filter (:mod:`emgd.dsp.filters`), decimation (:mod:`emgd.dsp.decimate`), calibration
normalisation (:mod:`emgd.dsp.normalise`), ring buffer (:mod:`emgd.dsp.ring`) and windowing
(:mod:`emgd.dsp.window`). Each stage holds only its own state and never calls another; the
pipeline composes them. Nothing here reads the clock, touches hardware or files, or loops
over samples in Python. Import the modules themselves: this package re-exports nothing, so
that importing the normaliser does not pull in scipy.signal (2 s and 50 MiB to import).
"""
