"""Who may talk to the server and how much they may send: the listen address rule, the bearer token and the
request-size limit, checked on every request before any route runs."""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from captioneer.backends.errors import ConfigurationError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_ENV = "CAPTIONEER_API_TOKEN"


def only_this_machine(bind: str) -> bool:
    """Whether listening on ``bind`` is reachable from this machine only (``localhost``, 127.0.0.0/8,
    ::1). The unspecified address (0.0.0.0, ::) listens on every network, so it is not."""
    name = bind.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name may resolve to any interface


def listen_token(bind: str, allow_remote: bool, token: str | None) -> tuple[str | None, bool]:
    """The token every request must carry when listening on ``bind``, and whether it was made up here.

    Loopback: the given token (or none). Anywhere else needs ``allow_remote``, and always a token: the
    given one, else a new random one (to be shown to the person once).

    Raises:
        ConfigurationError: a non-loopback address without ``allow_remote``.
    """
    if only_this_machine(bind):
        return token or None, False
    if not allow_remote:
        raise ConfigurationError(
            f"--bind {bind} would let other machines send photos to this server: pass --allow-remote as well "
            "(a token is then required; one is made up unless you give --token), or bind 127.0.0.1."
        )
    if token:
        return token, False
    return secrets.token_urlsafe(32), True


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (compared in constant time)."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


async def send_error(send: Send, status: int, kind: str, message: str, headers: dict[str, str] | None = None
                     ) -> None:
    """A JSON error response in the API's error shape, straight on the ASGI channel."""
    body = json.dumps({"error": {"message": message, "type": kind, "code": None}}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class AccessGuard:
    """ASGI middleware: refuses a request without the token (401) and a body over the limit (413) before
    the application reads it. A body without a length (chunked) is read here up to the limit and handed
    on, so the limit holds however the client sends."""

    def __init__(self, app: ASGIApp, *, token: str | None, max_request_bytes: int) -> None:
        self.app = app
        self.token = token
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        if self.token is not None and not bearer_matches(headers.get("authorization"), self.token):
            await send_error(
                send, 401, "unauthorized",
                "This server needs its API token: send the header 'Authorization: Bearer TOKEN' "
                "(the token `captioneer serve` printed at start, or the one given with --token).",
                {"www-authenticate": "Bearer"},
            )
            return
        limit = self.max_request_bytes
        too_large = (
            f"The request is larger than this server's limit of {limit / 2**20:g} MB: send a smaller image "
            "(the server shrinks it anyway) or start the server with a larger --max-request-mb."
        )
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > limit:
                await send_error(send, 413, "too_large", too_large)
                return
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await send_error(send, 413, "too_large", too_large)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that gives ``body`` once, then what the client sends next (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
