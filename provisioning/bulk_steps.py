"""The distributor's steps: flash, inject, calibrate, depth-quality, register-inventory."""

from __future__ import annotations
