"""The support engineer's read-only steps, and the verdict drawn from them by rules kept as data."""

from __future__ import annotations
