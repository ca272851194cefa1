"""The installer's steps: firmware-update, field-check, face-pay-check, bind, activate, subsidy-enroll."""

from __future__ import annotations
