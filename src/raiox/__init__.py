"""Raiox AI: identify dental implant systems from radiographs."""

__version__ = "0.1.0"
