"""EXO2-HMAC-SHA256 request signatures, as the Exoscale API v2 checks them.

The simulator verifies every signed request the way the real API does, so a client that signs
wrongly (wrong secret, unsigned query arguments, expired) fails here before it fails in the cloud.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

SCHEME = "EXO2-HMAC-SHA256"


class SignatureError(Exception):
    """The request is not signed by a known key; the reason is for logs only, never for the client."""


@dataclass(frozen=True)
class Authorization:
    credential: str
    signed_query_args: tuple[str, ...]
    expires: int
    signature: bytes


def parse_authorization(header: str) -> Authorization:
    scheme, _, params = header.strip().partition(" ")
    if scheme != SCHEME:
        raise SignatureError(f"unsupported scheme {scheme!r}")
    fields: dict[str, str] = {}
    for part in params.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed authorization field {part!r}")
        fields[name] = value
    try:
        return Authorization(
            credential=fields["credential"],
            signed_query_args=tuple(a for a in fields.get("signed-query-args", "").split(";") if a),
            expires=int(fields["expires"]),
            signature=base64.b64decode(fields["signature"], validate=True),
        )
    except (KeyError, ValueError, binascii.Error) as exc:
        raise SignatureError(f"malformed authorization header: {exc}") from exc


def string_to_sign(
    method: str, path: str, body: bytes, query: str, signed_args: tuple[str, ...], expires: int
) -> bytes:
    """The five-line message: request line, body, signed query values, headers (none), expiry."""
    values = parse_qs(query)
    query_values = "".join(values[name][0] for name in signed_args if len(values.get(name, [])) == 1)
    return b"\n".join([f"{method} {path}".encode(), body, query_values.encode(), b"", str(expires).encode()])


def sign(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def verify(
    keys: Mapping[str, str],
    header: str | None,
    *,
    method: str,
    path: str,
    query: str,
    body: bytes,
    now: float,
) -> str:
    """Return the API key that signed the request, or raise SignatureError."""
    if not header:
        raise SignatureError("no Authorization header")
    auth = parse_authorization(header)
    secret = keys.get(auth.credential)
    if secret is None:
        raise SignatureError("unknown API key")
    if auth.expires < now:
        raise SignatureError("signature expired")
    unsigned = set(parse_qs(query)) - set(auth.signed_query_args)
    if unsigned:
        raise SignatureError(f"unsigned query arguments: {sorted(unsigned)}")
    expected = sign(secret, string_to_sign(method, path, body, query, auth.signed_query_args, auth.expires))
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureError("signature mismatch")
    return auth.credential
