"""Hardware layer: bus interfaces, chip drivers and the backend registry.

Drivers take an injected bus (SPI with py-spidev's ``SpiDev`` interface, I²C with the
``busio.I2C`` interface the Adafruit libraries call, a DRDY line) so the same driver code
runs on a Raspberry Pi and against the simulators in :mod:`emgd.sim`.
"""
