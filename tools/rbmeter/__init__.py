"""rbmeter: host tools for the rbAmp metering node."""
__version__ = "0.1.0"
