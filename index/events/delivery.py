"""Delivering the outbox: a background thread per process, signed POSTs, exponential backoff.

Every process that serves the index runs one :class:`Dispatcher` thread. It looks at the outbox
when woken (an event was queued by this process) and at least every ``POLL_SECONDS`` (events
queued by other workers, retries that came due, deliveries left by a process that died).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from .audit import now_iso
from .notifications import RETIRED_FIELD, Notifications
from .outbox import Outbox
from .targets import Outcome, post

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# Deliveries attempted per pass, so one pass over a long backlog does not starve new events.
BATCH = 50


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the exact body>``: the X-Index-Signature-256 header."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def retry_delay(attempts: int, first: float, longest: float) -> float:
    """Seconds before the next try after ``attempts`` failures: first, doubling, capped."""
    return min(longest, first * (2.0 ** min(attempts - 1, 40)))


class Dispatcher:
    """Attempts due deliveries; safe to run in several processes on one data dir."""

    def __init__(self, outbox: Outbox, notifications: Notifications, config: dict[str, Any],
                 on_outcome: Callable[[str, str], None] | None = None) -> None:
        self.outbox = outbox
        self.notifications = notifications
        self.allow_private = bool(config["WEBHOOK_ALLOW_PRIVATE"])
        self.first_delay = float(config["WEBHOOK_RETRY_SECONDS"])
        self.longest_delay = float(config["WEBHOOK_RETRY_MAX_SECONDS"])
        self.give_up_after = float(config["WEBHOOK_GIVE_UP_SECONDS"])
        self.on_outcome = on_outcome or (lambda event, outcome: None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_pid: int | None = None
        self._start_lock = threading.Lock()

    # -- the thread -----------------------------------------------------------------------------
    def start(self) -> None:
        """Run the delivery thread in this process (again in a forked child: threads do not fork)."""
        with self._start_lock:
            if self._thread is not None and self._thread_pid == os.getpid() and self._thread.is_alive():
                return
            self._wake, self._stop = threading.Event(), threading.Event()
            self._thread = threading.Thread(target=self._run, name="index-webhooks", daemon=True)
            self._thread_pid = os.getpid()
            self._thread.start()

    def start_in_forked_children(self) -> None:
        """Start the thread in every process forked from this one (server workers)."""
        reference = weakref.ref(self)

        def after_fork() -> None:
            dispatcher = reference()
            if dispatcher is not None:
                dispatcher._start_lock = threading.Lock()
                dispatcher._thread = None
                dispatcher.start()

        os.register_at_fork(after_in_child=after_fork)

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread_pid == os.getpid():
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        try:
            self.outbox.remove_stale_temp_files()
        except OSError as exc:
            log.warning("could not clean the webhook outbox: %s", exc)
        while not self._stop.is_set():
            try:
                self.deliver_due()
            except Exception:  # a bad disk moment must not end deliveries for good
                log.exception("webhook delivery pass failed; trying again shortly")
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    # -- one pass -------------------------------------------------------------------------------
    def deliver_due(self, now: float | None = None) -> int:
        """Attempt every delivery that is due; returns how many were attempted."""
        attempted = 0
        for entry in self.outbox.pending():
            if self._stop.is_set() or attempted >= BATCH:
                break
            if entry.get("next_at", 0) > (now if now is not None else time.time()):
                continue
            with self.outbox.claim(entry["id"]) as current:
                if current is None or current.get("next_at", 0) > (now if now is not None else time.time()):
                    continue  # another worker has it, or has just tried it
                self._attempt(current)
                attempted += 1
        return attempted

    def _attempt(self, entry: dict[str, Any]) -> None:
        notification = self.notifications.get(entry["notification"])
        if notification is None:
            self.outbox.remove(entry["id"])  # the notification was deleted: nobody to tell
            return
        body = entry["body"].encode("utf-8")
        headers = {"X-Index-Event": entry["event"], "X-Index-Delivery": entry["event_id"],
                   "X-Index-Signature-256": signature(notification["secret"], body)}
        outcome = post(notification["url"], body, headers, allow_private=self.allow_private)
        entry["attempts"] = int(entry.get("attempts", 0)) + 1
        self._record(notification["uuid"], entry, outcome)
        if outcome.delivered:
            self.outbox.remove(entry["id"])
            self.on_outcome(entry["event"], "delivered")
            self._drop_if_retired(notification)
        elif time.time() - float(entry["created"]) >= self.give_up_after:
            log.warning("webhook %s: giving up on delivery %s after %d attempts (%s)",
                        notification["uuid"], entry["event_id"], entry["attempts"], outcome.error)
            self.outbox.remove(entry["id"])
            self.on_outcome(entry["event"], "given_up")
            self._drop_if_retired(notification)
        else:
            entry["next_at"] = time.time() + retry_delay(entry["attempts"], self.first_delay, self.longest_delay)
            self.outbox.reschedule(entry)
            self.on_outcome(entry["event"], "failed")

    def _drop_if_retired(self, notification: dict[str, Any]) -> None:
        """A retired webhook (its account was deleted) goes once nothing is queued for it."""
        if notification.get(RETIRED_FIELD) and not any(
                entry["notification"] == notification["uuid"] for entry in self.outbox.pending()):
            self.notifications.delete(notification["uuid"])

    def _record(self, notification_id: str, entry: dict[str, Any], outcome: Outcome) -> None:
        attempt = {"at": now_iso(), "delivery": entry["event_id"], "event": entry["event"],
                   "attempt": entry["attempts"], "status": outcome.status,
                   "duration_ms": round(outcome.duration * 1000, 1), "error": outcome.error}
        try:
            self.notifications.note_attempt(notification_id, attempt)
        except Exception as exc:  # the attempt history is a convenience; the delivery counts
            log.warning("could not record a webhook attempt of %s: %s", notification_id, exc)
