"""Where the server listens: tcp://HOST:PORT or unix://PATH, checked before anything starts."""

from __future__ import annotations

from urllib.parse import urlparse


def tcp_address(uri: str) -> tuple[str, int]:
    """Host and port of a tcp:// URI; ValueError with a readable reason if either is missing."""
    try:
        parsed = urlparse(uri)
        host, port = parsed.hostname, parsed.port
    except ValueError as err:
        raise ValueError(f"{uri} is not tcp://HOST:PORT ({err})") from None
    if not host or port is None:
        raise ValueError(f"{uri} needs a host and a port, e.g. tcp://0.0.0.0:10300")
    return host, port


def unix_path(uri: str) -> str:
    path = uri.removeprefix("unix://")
    if not path:
        raise ValueError(f"{uri} needs a path, e.g. unix:///run/wyoming-flux.sock")
    return path


def check_uri(uri: str) -> None:
    """ValueError with one line for a URI the server cannot listen on."""
    if uri.startswith("tcp://"):
        tcp_address(uri)
    elif uri.startswith("unix://"):
        unix_path(uri)
    elif uri.startswith("stdio://"):
        raise ValueError("stdio:// is not supported: use tcp://HOST:PORT or unix://PATH")
    else:
        raise ValueError(f"must be tcp://HOST:PORT or unix://PATH, not {uri}")


def peer_address(peer: object) -> str:
    """The client's address for a log line: 192.168.1.5, 2001:db8::5, or "a local socket"."""
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "a local socket"
