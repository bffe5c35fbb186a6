"""Helpers that know nothing of Deepgram, turns or Wyoming: how background tasks are kept and cancelled
(`tasks`) and the one table of option ranges (`bounds`). The bottom layer: it imports only the standard
library."""
