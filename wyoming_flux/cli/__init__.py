"""The `wyoming-flux` command: argument parsing (`main`), the configuration readers shared by every subcommand
(`config`), `check` and `transcribe` against a running server (`client`), and the checks of a Deepgram key
(`keycheck`) and of a Home Assistant address (`namecheck`). The top layer: it may import every other layer and
the server extra's libraries; nothing imports it but the entry point. `entry` must stay importable without the
server extra, so that a missing extra is one line, not a traceback."""
