"""Throttling of failed Basic logins, per client address and per username.

Only failures are counted: a successful login, a request with remembered credentials and every
registry token check pass untouched. Once a key is over its limit, the next attempt is answered
429 with ``Retry-After`` before bcrypt runs, so a guessing client also stops costing CPU.

Counters live in this process's memory (the ``limits`` library's moving window): with N gunicorn
workers a client can make up to N times the configured number of failures per minute.
"""
from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from .errors import TooManyRequests
from .logs import escaped

log = logging.getLogger("index.ratelimit")

_MAX_USERNAME_KEY_CHARS = 64  # bounds the memory one attacker-chosen username can occupy


class LoginThrottle:
    """Counts failed logins per ``(address)`` and per ``(username)`` in a sliding 60 s window."""

    def __init__(self, failures_per_minute: int) -> None:
        self._item = RateLimitItemPerMinute(failures_per_minute) if failures_per_minute > 0 else None
        self._limiter = MovingWindowRateLimiter(MemoryStorage()) if self._item else None

    @staticmethod
    def _keys(address: str, username: str) -> list[tuple[str, str]]:
        return [("login-address", address or "-"), ("login-username", username[:_MAX_USERNAME_KEY_CHARS])]

    def retry_after(self, address: str, username: str) -> int | None:
        """Seconds until another attempt may be made, or None while under the limit."""
        if self._limiter is None or self._item is None:
            return None
        wait = None
        for key in self._keys(address, username):
            if not self._limiter.test(self._item, *key):
                reset_at = self._limiter.get_window_stats(self._item, *key).reset_time
                wait = max(wait or 1, math.ceil(reset_at - time.time()))
        return wait

    def check(self, address: str, username: str) -> None:
        """Raise 429 when the address or the username has failed too often lately."""
        wait = self.retry_after(address, username)
        if wait is not None:
            raise TooManyRequests(f"too many failed logins; try again in {wait} s", retry_after=wait)

    def record_failure(self, address: str, username: str) -> None:
        if self._limiter is None or self._item is None:
            return
        for key in self._keys(address, username):
            self._limiter.hit(self._item, *key)
            # The failure that used up the allowance: one WARNING per lockout, not one per 429.
            if not self._limiter.test(self._item, *key):
                what = "address" if key[0] == "login-address" else "username"
                log.warning("login locked out for %s %s after %d failed logins in 60 s (this worker)",
                            what, escaped(key[1]), self._item.amount)

