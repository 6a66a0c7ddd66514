"""bcrypt hashing, with a dummy hash so unknown users cost the same time as known ones."""
from __future__ import annotations

import functools
import hashlib
import hmac
import threading
import time

import bcrypt

MAX_BYTES = 72


def hash_password(password: str, rounds: int) -> str:
    secret = password.encode("utf-8")
    if len(secret) > MAX_BYTES:
        # bcrypt only looks at 72 bytes; registration refuses longer ones before we get here.
        raise ValueError(f"password longer than {MAX_BYTES} bytes")
    return bcrypt.hashpw(secret, bcrypt.gensalt(rounds)).decode("ascii")


@functools.lru_cache(maxsize=8)
def _dummy_hash(rounds: int) -> bytes:
    return bcrypt.hashpw(b"dummy password for unknown users", bcrypt.gensalt(rounds))


def warm_up(rounds: int) -> None:
    """Compute the dummy hash now rather than on the first unknown user's login."""
    _dummy_hash(rounds)


def check_password(password: str, stored_hash: str | None, rounds: int) -> bool:
    """True when ``password`` matches ``stored_hash``.

    With no stored hash (unknown user) a dummy hash of the same cost is checked anyway, so the
    answer takes as long as for a known user. Over-long or unencodable passwords are a plain
    failure, never an exception.
    """
    try:
        secret = password.encode("utf-8")
    except UnicodeEncodeError:
        secret = b""
    too_long = len(secret) > MAX_BYTES
    candidate = secret[:MAX_BYTES]
    target = stored_hash.encode("ascii") if stored_hash else _dummy_hash(rounds)
    try:
        matched = bcrypt.checkpw(candidate, target)
    except ValueError:
        matched = False
    return matched and stored_hash is not None and not too_long


class VerifiedCredentials:
    """Remembers recently verified username/password pairs for a short time.

    A ``docker push`` sends the same Basic credentials on several requests; paying bcrypt (~250 ms
    at 12 rounds) on each would dominate the push. Entries are keyed by an HMAC of user and
    password (the password itself is never kept) and remember the stored hash they matched, so a
    password change in any worker makes them miss at once.
    """

    def __init__(self, secret: bytes, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self._secret = secret
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._entries: dict[bytes, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _key(self, username: str, password: str) -> bytes:
        message = username.encode("utf-8", "surrogatepass") + b"\x00" + password.encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def is_verified(self, username: str, password: str, stored_hash: str) -> bool:
        if self._ttl <= 0:
            return False
        key = self._key(username, password)
        entry = self._entries.get(key)
        if entry is None or entry[1] <= time.monotonic():
            return False
        if hmac.compare_digest(entry[0], stored_hash):
            return True
        # The password changed since: forget the pair, so that it no longer counts as remembered
        # (index/ops/quick_requests.py sends only remembered pairs past bcrypt's thread).
        with self._lock:
            self._entries.pop(key, None)
        return False

    def remembers(self, username: str, password: str) -> bool:
        """Whether these credentials were verified recently (against whatever hash they matched):
        the request will most likely pass without bcrypt."""
        if self._ttl <= 0:
            return False
        entry = self._entries.get(self._key(username, password))
        return entry is not None and entry[1] > time.monotonic()

    def remember(self, username: str, password: str, stored_hash: str) -> None:
        if self._ttl <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._entries = {key: value for key, value in self._entries.items() if value[1] > now}
                if len(self._entries) >= self._max_entries:
                    self._entries.clear()
            self._entries[self._key(username, password)] = (stored_hash, now + self._ttl)
