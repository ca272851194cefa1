"""Where each partition's last flashed image lies, so a unit can hash what it holds without a reboot.

A real unit keeps a descriptor per image (Android's vbmeta hash descriptors are the model): which bytes of the
partition the image covers.  Here the simulated flash records the data-bearing extents every ``flash`` wrote
(``images.json`` in the unit's directory): a raw image is ``[0, size)``; a sparse image its RAW and FILL chunks,
DONT_CARE holes left out, since they keep whatever the partition held.  The flash session says where an image
starts: the pieces of an image re-sparsed for a small download buffer arrive as an unbroken run of download/flash
commands to the same partition (the fastboot server marks the first of them ``new``), so a later piece continues
the image whatever its offsets; nothing is guessed from them.  An erase forgets the record.

The content hash of a partition is the SHA-256 of those extents' bytes in offset order: for a raw image, its
SHA-256 as the bundle's manifest states it (``diag/slot-hashes``, docs/diagnose.md).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from .sparse_image import Extent
from .state import replace_atomically

IMAGES_FILE = "images.json"


class ImageMap:
    """The extents of the last image flashed to each partition instance (``boot_a``, ``system_b`` ...)."""

    def __init__(self, unit_dir: Path) -> None:
        self.path = Path(unit_dir) / IMAGES_FILE
        self._lock = threading.Lock()

    def _load(self) -> dict[str, list[list[int]]]:
        try:
            document: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # a unit made before the map, or a torn file: nothing is known, nothing is claimed
        if not isinstance(document, dict):
            return {}
        return {
            name: [[int(o), int(s)] for o, s in extents]
            for name, extents in document.items()
            if isinstance(extents, list) and all(isinstance(e, list) and len(e) == 2 for e in extents)
        }

    def _save(self, document: dict[str, list[list[int]]]) -> None:
        replace_atomically(self.path, json.dumps(document, sort_keys=True).encode())

    def record(self, full_name: str, extents: list[Extent], *, new: bool = True) -> None:
        """A flash wrote ``extents`` of ``full_name``: a new image (``new``, the session's first piece of it) or
        the next piece of the image the session is flashing there."""
        pieces = [[int(o), int(s)] for o, s in extents if s > 0]
        with self._lock:
            document = self._load()
            document[full_name] = pieces if new else document.get(full_name, []) + pieces
            self._save(document)

    def forget(self, full_name: str) -> None:
        with self._lock:
            document = self._load()
            if document.pop(full_name, None) is not None:
                self._save(document)

    def extents(self, full_name: str) -> list[Extent] | None:
        """The recorded extents, None when no image was ever flashed there."""
        with self._lock:
            found = self._load().get(full_name)
        return None if found is None else [(o, s) for o, s in found]
