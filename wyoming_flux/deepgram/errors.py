"""Deepgram failures (Flux's and Nova-3's): one table of stable error codes, what causes each, whether a retry can fix it, and whether
the user must act. docs/how-it-works.md shows this table (a test compares them)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorKind:
    code: str
    cause: str  # what Flux did (status, close or error code), as docs/how-it-works.md shows it
    message: str  # what we tell the user: "Deepgram" where Nova-3 fails the same way, "Flux" where only Flux can
    retry: bool  # a later attempt with the same settings can succeed
    user_action: bool  # only the user can fix it (Home Assistant raises a repair issue)


_KINDS = (
    ErrorKind("flux-bad-request", "HTTP 400, or any other 4xx", "Deepgram refused the request", False, False),
    ErrorKind("flux-auth", "HTTP 401", "Deepgram rejected the API key", False, True),
    ErrorKind("flux-no-credit", "HTTP 402", "the Deepgram project has no credit left", False, True),
    ErrorKind("flux-forbidden", "HTTP 403", "this Deepgram key may not use the requested model", False, True),
    ErrorKind("flux-not-found", "HTTP 404", "no Deepgram endpoint at this address", False, True),
    ErrorKind("flux-request-timeout", "HTTP 408", "Deepgram timed out the request", True, False),
    ErrorKind("flux-rate-limited", "HTTP 429", "Deepgram's limit of concurrent streams was reached", True, False),
    ErrorKind("flux-unavailable", "HTTP 5xx, refused, DNS or TLS failure", "Deepgram is unavailable", True, False),
    ErrorKind("flux-timeout", "no handshake within 3 s, or silence with nothing heard", "Deepgram did not answer in time",
              True, False),
    ErrorKind("flux-stream", "stream broke: `INTERNAL_SERVER_ERROR`, `NET-0000` (1011), dropped socket",
              "the Deepgram stream broke", True, False),
    ErrorKind("flux-idle-timeout", "`NET-0001` (1011) or `INACTIVE_CLIENT`: no audio reached Flux in time",
              "Deepgram closed an idle stream", True, False),
    ErrorKind("flux-bad-audio", "`DATA-0000` (1008): audio Flux cannot decode", "Deepgram could not decode the audio",
              False, False),
    ErrorKind("flux-unsupported-message", "`UNPARSABLE_CLIENT_MESSAGE`: a control message this deployment lacks",
              "this Flux deployment refused a control message", False, False),
)
KINDS: dict[str, ErrorKind] = {kind.code: kind for kind in _KINDS}

HANDSHAKE_CODES: dict[int, str] = {
    400: "flux-bad-request", 401: "flux-auth", 402: "flux-no-credit", 403: "flux-forbidden",
    404: "flux-not-found", 408: "flux-request-timeout", 429: "flux-rate-limited",
}

# In-stream failures: the `code` of a fatal Error message, or the code inside a close frame's reason.
STREAM_CODES: dict[str, str] = {
    "INTERNAL_SERVER_ERROR": "flux-stream",
    "NET-0000": "flux-stream",
    "NET-0001": "flux-idle-timeout",
    "INACTIVE_CLIENT": "flux-idle-timeout",  # Flux's Error for a client that sent nothing in time
    "DATA-0000": "flux-bad-audio",
    "UNPARSABLE_CLIENT_MESSAGE": "flux-unsupported-message",
}


class DeepgramError(Exception):
    """A Flux failure, with a stable code for clients and a text that never contains the API key."""

    code = "flux-stream"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 dg_error: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.status = status
        self.dg_error = dg_error

    @property
    def kind(self) -> ErrorKind:
        return KINDS.get(self.code, KINDS["flux-stream"])

    @property
    def retryable(self) -> bool:
        return self.kind.retry


class DeepgramAuthError(DeepgramError):
    code = "flux-auth"


class FluxForbiddenError(DeepgramError):
    code = "flux-forbidden"


class FluxBadRequestError(DeepgramError):
    code = "flux-bad-request"


class FluxRateLimitError(DeepgramError):
    code = "flux-rate-limited"


class DeepgramUnavailableError(DeepgramError):
    code = "flux-unavailable"


class DeepgramStreamError(DeepgramError):
    code = "flux-stream"


class DeepgramTimeoutError(DeepgramError):
    code = "flux-timeout"


_CLASSES: dict[str, type[DeepgramError]] = {
    cls.code: cls for cls in (DeepgramAuthError, FluxForbiddenError, FluxBadRequestError, FluxRateLimitError,
                              DeepgramUnavailableError, DeepgramTimeoutError)
}


def error_for_status(status: int, dg_error: str | None) -> DeepgramError:
    """Map a failed handshake to its typed error, keeping Deepgram's own explanation."""
    if status >= 500:
        code = "flux-unavailable"
    else:
        code = HANDSHAKE_CODES.get(status, "flux-bad-request" if 400 <= status < 500 else "flux-unavailable")
    detail = f": {dg_error}" if dg_error else ""
    return _CLASSES.get(code, DeepgramError)(f"{KINDS[code].message} (HTTP {status}){detail}", code=code, status=status,
                                         dg_error=dg_error)


# A /v1 close reason is a sentence with the code inside, as a link or as written: "... within the timeout
# window. See https://dpgr.am/net0001", or "NET-0001".
_CODE_IN_REASON = re.compile(r"\b(NET|DATA)-?(\d{4})\b", re.IGNORECASE)


def stream_code(reason: str) -> str:
    """The code of a fatal Error message's `code` or of a close frame's reason, as STREAM_CODES spells it."""
    text = reason.strip()
    if text.upper() in STREAM_CODES:
        return text.upper()
    found = _CODE_IN_REASON.search(text)
    return f"{found[1].upper()}-{found[2]}" if found else text


def error_for_stream(reason: str, description: str) -> DeepgramError:
    """Map a fatal Error message (its code) or a close frame (its reason) to its typed error."""
    code = stream_code(reason)
    stable = STREAM_CODES.get(code, "flux-stream")
    said = reason.strip()  # Deepgram's own words, when they are more than the code
    parts = (KINDS[stable].message, code, said if said != code else "", description)
    return DeepgramStreamError(": ".join(part for part in parts if part), code=stable, dg_error=description or None)
