"""The Wyoming server: it listens, admits connections, reads and writes Wyoming events with limits, runs each
command through a turn session, answers Describe with Info, and serves metrics, zeroconf discovery, names from
Home Assistant and the Wyoming fallback. It may import `turn`, `deepgram` and `common`, and the server extra's
libraries (wyoming, zeroconf, prometheus_client); only it and `cli` may import those.

    server.py, settings.py, discovery   the server itself: listening, admission, Info, zeroconf
    protocol/                           Wyoming: connections, the wire, commands, the fallback client
    hass/                               Home Assistant: names for keyterms, the recogniser for early answers
    monitoring/                         the metrics port
"""
