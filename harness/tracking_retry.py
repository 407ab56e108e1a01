"""Tracking calls that outlast a short outage: retries with backoff for a bounded time.

A tracking server restarted, a network blip, a SQLite store another process holds locked: each is
over in seconds to minutes, and a grid that gave up at the first refused connection would throw
away hours of training. So every call to the store is retried with exponential backoff (0.5 s
doubling up to 10 s) until ``ITR_TRACKING_RETRY_SECONDS`` (default 120 s) have passed since the
store first stopped answering; then it raises `TrackingUnavailable`, a `UserError`, so whatever
cannot keep the results elsewhere stops with one line. Only failures that may pass are retried:
refused or timed-out connections, 5xx answers, "database is locked". Bad input (400, 404) is
raised at once, and so is a full store (`TrackingStoreFull`): waiting does not free disk space.

The time the store has been away is kept per client, across calls: once one call has waited the
whole bound, the next ones try once and fail at once (until one succeeds), so a driver that
closes its runs after an outage does not wait the bound again for each of them.

MLflow's own HTTP retries (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, 7 by default, minutes of backoff)
would hide the outage from this bound, so a tracker sets it to 0 unless the user set it.
"""

from __future__ import annotations

import errno
import os
import re
import time
from typing import Any, Callable

from harness.errors import UserError

RETRY_SECONDS_VARIABLE = "ITR_TRACKING_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 120.0
FIRST_DELAY, LONGEST_DELAY = 0.5, 10.0
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class TrackingUnavailable(UserError):
    """The tracking store did not answer within the retry bound."""


class TrackingStoreFull(TrackingUnavailable):
    """The tracking store (a SQLite file, its artifacts' disk) has no room left."""


def retry_seconds() -> float:
    """The retry bound, ``$ITR_TRACKING_RETRY_SECONDS`` (seconds, ≥ 0) or 120."""
    return seconds_from_environment(RETRY_SECONDS_VARIABLE, DEFAULT_RETRY_SECONDS, zero_allowed=True)


def seconds_from_environment(variable: str, default: float, zero_allowed: bool) -> float:
    """A duration in seconds from environment variable `variable` (`default` when unset); a
    value that is no number, negative or (unless `zero_allowed`) zero is a one-line UserError."""
    text = os.environ.get(variable)
    if text is None:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if seconds < 0 or (seconds == 0 and not zero_allowed):
        raise UserError(f"{variable}={text!r}: expected a number of seconds {'≥' if zero_allowed else '>'} 0")
    return seconds


def failure_kind(exc: BaseException) -> str | None:
    """``"full"``, ``"transient"`` or None (an error to raise at once) for an exception a
    tracking call raised."""
    import requests
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE, ErrorCode

    message = str(exc)
    if "database or disk is full" in message or (isinstance(exc, OSError) and exc.errno in FULL_ERRNOS):
        return "full"
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)):
        return "transient"
    if "database is locked" in message:
        return "transient"
    if isinstance(exc, MlflowException):
        if message.startswith("API request to") and re.search(r" failed with (timeout )?exception| failed with error code 5\d\d", message):
            return "transient"  # refused, reset, timed out, or a 5xx MLflow's HTTP layer gave up on
        if exc.error_code == ErrorCode.Name(TEMPORARILY_UNAVAILABLE) or exc.get_http_status_code() >= 500:
            return "transient"
    return None


def first_line(exc: BaseException) -> str:
    """The first line of an error that says why (not SQLAlchemy's note on autoflush), at most
    300 characters: enough to say why, short enough for one line."""
    lines = [line for line in str(exc).strip().splitlines() if line and not line.startswith("(raised as a result of")]
    return (lines[0] if lines else type(exc).__name__)[:300]


class RetryingClient:
    """An `mlflow.MlflowClient` whose calls are retried as the module says; any other attribute
    is the client's own."""

    def __init__(self, client: Any, tracking_uri: str, seconds: float | None = None) -> None:
        self._client = client
        self.tracking_uri = tracking_uri
        self.seconds = retry_seconds() if seconds is None else seconds
        self._away_since: float | None = None

    @property
    def raw(self) -> Any:
        """The client itself, for calls that must not wait (heartbeats)."""
        return self._client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute
        return lambda *args, **kwargs: self.call(attribute, *args, **kwargs)

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        delay = FIRST_DELAY
        while True:
            try:
                result = function(*args, **kwargs)
            except Exception as exc:
                kind = failure_kind(exc)
                if kind is None:
                    raise
                if kind == "full":
                    raise TrackingStoreFull(f"tracking store {self.tracking_uri} is full: {first_line(exc)}") from exc
                now = time.monotonic()
                self._away_since = self._away_since if self._away_since is not None else now
                left = self.seconds - (now - self._away_since)
                if left <= 0:
                    raise TrackingUnavailable(
                        f"tracking store {self.tracking_uri} did not answer for {self.seconds:g} s ({first_line(exc)})"
                    ) from exc
                time.sleep(min(delay, left))
                delay = min(2 * delay, LONGEST_DELAY)
            else:
                self._away_since = None
                return result


def leave_retries_to_us() -> None:
    """Leave retrying and reporting to `RetryingClient`: MLflow's HTTP layer tries once, unless
    the user chose otherwise (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``; worker processes inherit it),
    and its SQL store does not print a traceback for each lock it meets (the failure that outlasts
    the bound is reported as one line)."""
    import logging

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
