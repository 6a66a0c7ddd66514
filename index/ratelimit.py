"""Throttling: failed Basic logins (per client address and per username) and registrations (per
client address).

Logins: an attempt that reaches bcrypt counts from the moment it starts (as "in flight"), so N
parallel guesses cannot all pass the check before the first failure is recorded; a failure then
stays counted for 60 s, a success is not counted. Once a key is at its limit the next attempt is
answered 429 with ``Retry-After`` before bcrypt runs, so a guessing client also stops costing CPU.
A successful login, a request with remembered credentials and every registry token check pass
untouched.

Registrations: every attempt that gets as far as hashing the password counts, for an hour.

Counters live in this process's memory (the ``limits`` library's moving window): with N gunicorn
workers a client can make up to N times the configured number per window.
"""
from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterator

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from .errors import TooManyRequests
from .logs import escaped

log = logging.getLogger("index.ratelimit")

_MAX_USERNAME_KEY_CHARS = 64  # bounds the memory one attacker-chosen username can occupy


class _Attempt:
    """One login attempt in flight; call :meth:`failed` when the password was wrong."""

    def __init__(self) -> None:
        self.failure = False

    def failed(self) -> None:
        self.failure = True


class LoginThrottle:
    """Counts failed logins per ``(address)`` and per ``(username)`` in a sliding 60 s window,
    plus the attempts being checked right now."""

    def __init__(self, failures_per_minute: int) -> None:
        self._item = RateLimitItemPerMinute(failures_per_minute) if failures_per_minute > 0 else None
        self._limiter = MovingWindowRateLimiter(MemoryStorage()) if self._item else None
        # Test-and-reserve must be one step: the window's count plus the attempts in flight.
        self._lock = threading.Lock()
        self._in_flight: dict[tuple[str, str], int] = {}

    @staticmethod
    def _keys(address: str, username: str) -> list[tuple[str, str]]:
        return [("login-address", address or "-"), ("login-username", username[:_MAX_USERNAME_KEY_CHARS])]

    def retry_after(self, address: str, username: str) -> int | None:
        """Seconds until another attempt may be made, or None while under the limit."""
        with self._lock:
            return self._retry_after_locked(self._keys(address, username))

    def _retry_after_locked(self, keys: list[tuple[str, str]]) -> int | None:
        if self._limiter is None or self._item is None:
            return None
        wait = None
        for key in keys:
            reset_at, remaining = self._limiter.get_window_stats(self._item, *key)
            if remaining - self._in_flight.get(key, 0) <= 0:
                # Full of attempts still in flight (no failure yet): try again in a second.
                until = math.ceil(reset_at - time.time()) if remaining <= 0 else 1
                wait = max(wait or 1, until)
        return wait

    def check(self, address: str, username: str) -> None:
        """Raise 429 when the address or the username has failed too often lately."""
        wait = self.retry_after(address, username)
        if wait is not None:
            raise TooManyRequests(f"too many failed logins; try again in {wait} s", retry_after=wait)

    @contextlib.contextmanager
    def attempt(self, address: str, username: str) -> Iterator[_Attempt]:
        """Reserve a place for one password check (429 when there is none), then record it as a
        failure if :meth:`_Attempt.failed` was called, or give the place back."""
        if self._limiter is None or self._item is None:
            yield _Attempt()
            return
        keys = self._keys(address, username)
        with self._lock:
            wait = self._retry_after_locked(keys)
            if wait is not None:
                raise TooManyRequests(f"too many failed logins; try again in {wait} s", retry_after=wait)
            for key in keys:
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
        attempt = _Attempt()
        try:
            yield attempt
        finally:
            with self._lock:
                for key in keys:
                    left = self._in_flight.get(key, 1) - 1
                    if left > 0:
                        self._in_flight[key] = left
                    else:
                        self._in_flight.pop(key, None)
                    if attempt.failure:
                        self._hit(key)

    def record_failure(self, address: str, username: str) -> None:
        if self._limiter is None or self._item is None:
            return
        with self._lock:
            for key in self._keys(address, username):
                self._hit(key)

    def _hit(self, key: tuple[str, str]) -> None:
        """Count one failure (lock held); the one that uses up the allowance logs a WARNING,
        once per lockout rather than once per 429."""
        assert self._limiter is not None and self._item is not None
        self._limiter.hit(self._item, *key)
        if not self._limiter.test(self._item, *key):
            what = "address" if key[0] == "login-address" else "username"
            log.warning("login locked out for %s %s after %d failed logins in 60 s (this worker)",
                        what, escaped(key[1]), self._item.amount)


class RegistrationThrottle:
    """Registrations per client address in a sliding hour; every attempt counts, first."""

    def __init__(self, per_hour: int) -> None:
        self._item: RateLimitItem | None = RateLimitItemPerHour(per_hour) if per_hour > 0 else None
        self._limiter = MovingWindowRateLimiter(MemoryStorage()) if self._item else None

    def count(self, address: str) -> None:
        """Count one registration from ``address``; 429 when it has made its hour's share."""
        if self._limiter is None or self._item is None:
            return
        key = ("registration-address", address or "-")
        if not self._limiter.hit(self._item, *key):  # test and count in one step
            reset_at = self._limiter.get_window_stats(self._item, *key).reset_time
            wait = max(1, math.ceil(reset_at - time.time()))
            raise TooManyRequests(f"too many registrations from this address; try again in {wait} s",
                                  retry_after=wait)
