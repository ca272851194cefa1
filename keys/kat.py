"""Known-answer tests: published inputs and outputs that the cryptographic core must reproduce.

Each module of the core (``keys.dukpt``, ``keys.tr31``, ``keys.kcv``, ``keys.session``) lists its own with a
``known_answers()`` function; ``keys.selftest`` runs them all, and injection refuses to start if one fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownAnswer:
    """One known-answer test: ``run()`` is True when the computed answer equals the published one.

    ``name`` says what is computed; ``source`` names the standard and the table or annex the vector is from.
    ``run`` must not raise on a wrong answer (it returns False) and must never log or return key material.
    """

    name: str
    source: str
    run: Callable[[], bool]
