"""Firmware: signed bundles, sparse images and the A/B flash procedure.

Bundles (``docs/firmware-bundle.md``): ``bundle`` opens and checks one before flashing,
``container`` vets the zip, ``manifest`` is the signed description, ``signing`` the release keys and
trust store, ``pack`` builds bundles.  Android sparse images: ``sparse`` (format, reader, expand),
``sparse_write`` (raw to sparse) and ``resparse`` (split for a unit's max-download-size).
"""
