"""The steps that write paper: a unit's label and its report."""

from __future__ import annotations
