"""Deepgram Flux speech-to-text for Home Assistant."""
