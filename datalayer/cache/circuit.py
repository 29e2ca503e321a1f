"""A circuit breaker: after repeated failures stop calling a dependency for a while, then probe it again."""

from __future__ import annotations

import time
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Closed -> open after ``failure_threshold`` consecutive failures; open -> half-open after ``reset_after_s``.

    Half-open lets one probe call through: success closes the circuit, failure opens it again.
    """

    def __init__(self, failure_threshold: int = 5, reset_after_s: float = 5.0) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self.failures = 0
        self.times_opened = 0
        self.last_error: str | None = None
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if time.monotonic() - self._opened_at >= self.reset_after_s:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go out now. In half-open, only one probe at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def succeeded(self) -> None:
        self.failures = 0
        self._opened_at = None
        self._probing = False

    def failed(self, error: str) -> None:
        self.failures += 1
        self.last_error = error
        if self._probing or (self._opened_at is None and self.failures >= self.failure_threshold):
            self._opened_at = time.monotonic()
            self.times_opened += 1
        self._probing = False

    def abandoned(self) -> None:
        """The call was cancelled before it said anything about the dependency."""
        self._probing = False

    def snapshot(self) -> dict[str, object]:
        return {"state": self.state, "consecutive_failures": self.failures, "times_opened": self.times_opened}
