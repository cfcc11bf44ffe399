"""emgd: a myoelectric prosthetic-hand controller for the Raspberry Pi.

The package reads surface EMG from an ADS1299 or MCP3008 over SPI, filters and windows it,
runs an ONNX network and drives five finger servos on a PCA9685 over I²C. Layers import
downwards only: cli → runner → pipeline → stages (hw, sim, dsp, model, safety) → config/errors.
"""

__version__ = "0.1.0"
