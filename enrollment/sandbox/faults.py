"""The sandbox's fault knobs: latency spikes, a 5xx rate, replies dropped after commit, a rate limit per app.

Every rate is a probability per request drawn from one seeded generator, so a run with a seed is repeatable
(given the same order of requests).  :class:`Faults` is plain data, assignable while the sandbox serves;
:class:`FaultPlan` draws from it.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_TRACKED_APPS = 1024


@dataclass
class Faults:
    """Every rate is a probability per request, 0..1."""

    latency_rate: float = 0.0
    """Requests delayed by ``latency_seconds`` (a "spike")."""
    latency_seconds: float = 2.0
    error_rate: float = 0.0
    """HTTP 503 before any work."""
    drop_rate: float = 0.0
    """The work is committed, then the connection is closed with no reply."""
    rate_limit: int = 0
    """Requests per second per app beyond which HTTP 429 + Retry-After (0: none)."""
    seed: int | None = None


@dataclass(frozen=True)
class Draw:
    """What the faults do to one request."""

    delay: float
    error: bool
    drop: bool


class FaultPlan:
    """Draws each request's faults from the current :class:`Faults` (re-seeded when they are replaced)."""

    def __init__(self, faults: Faults, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._recent: defaultdict[str, deque[float]] = defaultdict(deque)
        self.faults = faults

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults
            self._random = random.Random(faults.seed)

    def draw(self) -> Draw:
        with self._lock:
            faults, chance = self._faults, self._random.random
            delay = faults.latency_seconds if chance() < faults.latency_rate else 0.0
            return Draw(delay=max(0.0, delay), error=chance() < faults.error_rate, drop=chance() < faults.drop_rate)

    def limited(self, app_id: str) -> bool:
        """Whether one more request of ``app_id`` now goes beyond the rate limit (counted only when it does not)."""
        with self._lock:
            limit = self._faults.rate_limit
            if limit <= 0:
                return False
            now = self._monotonic()
            if len(self._recent) > MAX_TRACKED_APPS:  # app ids are the client's text: forget the idle ones
                for idle in [key for key, times in self._recent.items() if not times or times[-1] <= now - 1.0]:
                    del self._recent[idle]
            recent = self._recent[app_id]
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            if len(recent) >= limit:
                return True
            recent.append(now)
            return False
