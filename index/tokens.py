"""Docker v1 tokens: ``signature=<s>,repository="ns/repo",access=read|write|delete``.

The signature is an itsdangerous timed dump of who was granted what. A token stays valid until it
expires (a registry re-checks the same token on every request of a push), and the ``repository``
and ``access`` written beside the signature must equal the signed ones.

Signed beside them: the account's generation (``g``, see :func:`index.store.generation_of`), so a
token dies with the account state it was issued to, and for a delete token the delete id of the
repository (``d``), so it is good only for that one delete.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.url_safe import URLSafeSerializerMixin

ACCESS_LEVELS = ("read", "write", "delete")
VERIFIED_TOKENS_KEPT = 4096
_SALT = "docker-index.v1-token"
_ACTIVATION_SALT = "docker-index.activation"
_FIELD_RE = re.compile(r'\s*([A-Za-z_]+)=("([^"]*)"|[^,]*)\s*(?:,|$)')


class TokenError(Exception):
    """The token is missing, malformed, tampered with, expired or for something else."""


@dataclass(frozen=True)
class Grant:
    """What a valid token allows: ``access`` to ``repository`` on behalf of ``user``."""

    repository: str
    access: str
    user: str | None
    # The account generation the token was issued to (None: anonymous, or issued before tokens
    # carried one) and, for a delete token, the delete it was issued for.
    generation: str | None = None
    delete_id: str | None = None


class _TokenSerializer(URLSafeTimedSerializer):
    """itsdangerous' URL-safe timed serializer that does not try zlib when signing.

    A grant is a few dozen bytes of JSON; compressing it rarely pays, and trying costs about as
    much as the signature itself on every push and pull. Loading still accepts both forms, so
    tokens issued with compression keep verifying.
    """

    def dump_payload(self, obj: object) -> bytes:
        return base64_encode(super(URLSafeSerializerMixin, self).dump_payload(obj))


class TokenSigner:
    """Issues and verifies tokens with the current key; older keys still verify."""

    def __init__(self, secret_key: str, ttl_seconds: int, fallback_keys: Sequence[str] = ()) -> None:
        # itsdangerous signs with the last key and accepts any of them.
        self._serializer = _TokenSerializer([*fallback_keys, secret_key], salt=_SALT)
        # itsdangerous' own notion of "now" (a timed serializer makes TimestampSigners)
        self._clock = cast(TimestampSigner, self._serializer.make_signer())
        self.ttl_seconds = ttl_seconds
        # A registry checks the same token on every request of a push or pull: remember good
        # signatures (never failures), and still check the age on each use.
        self._unsign = functools.lru_cache(maxsize=VERIFIED_TOKENS_KEPT)(self._unsign_uncached)
        # Tokens issued in the current second: the signature covers the payload and a time stamp
        # in whole seconds, so the same grant in the same second signs to the same token (every
        # anonymous pull of a repository asks for one).
        self._issued: tuple[int, dict[tuple[str | None, ...], str]] = (-1, {})

    def issue(self, repository: str, access: str, user: str | None, *,
              generation: str | None = None, delete_id: str | None = None) -> str:
        """The header value for ``X-Docker-Token`` (no ``Token `` prefix: the client adds it)."""
        if access not in ACCESS_LEVELS:
            raise ValueError(f"unknown access {access!r}")
        second = self._clock.get_timestamp()
        issued_at, issued = self._issued
        if issued_at != second:
            issued = {}
            self._issued = (second, issued)  # last second's tokens are dropped whole
        key = (repository, access, user, generation, delete_id)
        token = issued.get(key)
        if token is None:
            payload: dict[str, Any] = {"r": repository, "a": access, "u": user}
            if generation is not None:
                payload["g"] = generation
            if delete_id is not None:
                payload["d"] = delete_id
            token = f'signature={self._serializer.dumps(payload)},repository="{repository}",access={access}'
            if len(issued) < VERIFIED_TOKENS_KEPT:
                issued[key] = token
        return token

    def verify(self, value: str) -> Grant:
        """Check a token (with or without the ``Token`` word) and return what it grants."""
        fields = parse_fields(value)
        signature = fields.get("signature")
        if not signature:
            raise TokenError("token has no signature")
        try:
            signed, issued = self._unsign(signature)
        except BadSignature:
            raise TokenError("token signature is not valid") from None
        age = self._clock.get_timestamp() - issued
        if not 0 <= age <= self.ttl_seconds:  # as itsdangerous' max_age: a future time is refused too
            raise TokenError("token expired")
        if not isinstance(signed, dict) or {"r", "a", "u"} - signed.keys():
            raise TokenError("token signature is not valid")
        if fields.get("repository") != signed["r"] or fields.get("access") != signed["a"]:
            raise TokenError("token repository or access does not match its signature")
        generation, delete_id = signed.get("g"), signed.get("d")
        if not all(value is None or isinstance(value, str) for value in (generation, delete_id)):
            raise TokenError("token signature is not valid")
        return Grant(repository=signed["r"], access=signed["a"], user=signed["u"],
                     generation=generation, delete_id=delete_id)

    def _unsign_uncached(self, signature: str) -> tuple[Any, int]:
        """The signed value and its time stamp (seconds); BadSignature when not ours or tampered."""
        signed, issued = self._serializer.loads(signature, return_timestamp=True)
        return signed, int(issued.timestamp())


def parse_fields(value: str) -> dict[str, str]:
    """Split ``[Token ]k=v,k="v",...`` into a dict; repeated keys must agree."""
    text = value.strip()
    if text[:6].lower() == "token ":
        text = text[6:]
    fields: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _FIELD_RE.match(text, position)
        if not match or match.end() == position:
            raise TokenError("token is malformed: expected signature=...,repository=\"...\",access=...")
        key = match.group(1).lower()
        val = match.group(3) if match.group(3) is not None else match.group(2).strip()
        # Clients join every X-Docker-Token value with ","; the same token twice is harmless.
        if fields.get(key, val) != val:
            raise TokenError(f"token has conflicting {key} values")
        fields[key] = val
        position = match.end()
    return fields


class ActivationError(Exception):
    """An activation link that is tampered with or expired (the message says which)."""


class ActivationLinks:
    """Signs and checks the username carried by an activation link."""

    def __init__(self, secret_key: str, ttl_seconds: int, fallback_keys: Sequence[str] = ()) -> None:
        self._serializer = URLSafeTimedSerializer([*fallback_keys, secret_key], salt=_ACTIVATION_SALT)
        self.ttl_seconds = ttl_seconds

    def token_for(self, username: str, account_id: str = "") -> str:
        """A link for ``username``; with ``account_id``, for that account only (not for a later
        account registered under the name once it was deleted and released)."""
        return self._serializer.dumps({"u": username, "a": account_id} if account_id else {"u": username})

    def username_of(self, token: str) -> str:
        """The username, or ActivationError when the token is tampered with or expired."""
        return self.account_of(token)[0]

    def account_of(self, token: str) -> tuple[str, str | None]:
        """The username and the account id (None in links made before ids were signed in);
        ActivationError when the token is tampered with or expired."""
        try:
            signed = self._serializer.loads(token, max_age=self.ttl_seconds)
        except SignatureExpired:
            raise ActivationError("this activation link has expired: register again or ask an administrator") from None
        except BadSignature:
            raise ActivationError("this activation link is not valid") from None
        username = signed.get("u") if isinstance(signed, dict) else None
        account_id = signed.get("a") if isinstance(signed, dict) else None
        if not isinstance(username, str) or not isinstance(account_id, str | None):
            raise ActivationError("this activation link is not valid")
        return username, account_id
