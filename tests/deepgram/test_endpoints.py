"""Deepgram URLs: the one rule the server's --flux-url and the integration's custom endpoint both apply."""

from __future__ import annotations

import pytest

from wyoming_flux import REGIONS, check_deepgram_url
from wyoming_flux.deepgram.endpoints import listen_urls


@pytest.mark.parametrize("url", [
    *REGIONS.values(), "ws://127.0.0.1:8080", "ws://127.0.0.1:8080/v2/listen", "wss://[::1]:443/v1/listen",
    "ws://deepgram.lan", "wss://proxy.example/deepgram/v2/listen?x=1", "ws://h:65535",
])
def test_a_url_deepgram_can_be_reached_at_is_accepted(url: str) -> None:
    check_deepgram_url(url)
    listen_urls(url)  # and both APIs' URLs can be made from it


@pytest.mark.parametrize(("url", "reason"), [
    ("ws://[::1", "not a URL: invalid IPv6 URL"),  # was a 23-line traceback at start
    ("ws://", "no host"),  # these were accepted, then failed every command
    ("wss://:0", "no host"),
    ("ws://h:abc/", "the port is not a number from 1 to 65535"),
    ("ws://h:0", "the port is not a number from 1 to 65535"),
    ("ws://h:70000/v2/listen", "the port is not a number from 1 to 65535"),
    ("https://api.deepgram.com/v2/listen", "not ws:// or wss://"),
    ("api.deepgram.com", "not ws:// or wss://"),
    ("", "not ws:// or wss://"),
    ("ws://api.deepgram .com", "spaces or control characters"),
    ("ws://h/\nv2", "spaces or control characters"),
])
def test_a_url_no_api_can_be_reached_at_is_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_deepgram_url(url)
    assert str(refused.value) == reason
