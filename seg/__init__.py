"""Customer segmentation platform: contract, generator, landing, orchestration helpers and the `seg` CLI."""

__version__ = "0.1.0"
