"""Deepgram Flux speech-to-text for Home Assistant voice: a Wyoming server and a shared turn core."""

__version__ = "0.1.0"
