"""Simulators that ship in the package: register-level chip models on simulated buses,
a simulated hand, and synthetic EMG.

They answer the real byte protocols so that ``emgd run --simulate`` and the tests exercise
every line of the real drivers. Nothing here is imported on the real-hardware path.
"""
