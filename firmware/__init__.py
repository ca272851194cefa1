"""Firmware: signed bundles, sparse images and the A/B flash procedure."""
