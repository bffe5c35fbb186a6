"""One voice command, from its first audio to its final text, for both ways in (the Wyoming server and the
Home Assistant integration): the session with its I/O (`session`), the pure state machine that decides
(`state`), what a command runs with and returns (`request`), audio adaptation (`audio`), keyterms from names
(`names`) and the local fallback's buffer and health (`fallback`). It may import `deepgram` and `common`, and
aiohttp and numpy; never wyoming, zeroconf or prometheus_client."""
