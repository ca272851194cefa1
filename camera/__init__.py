"""Camera calibration, depth quality and field checks of a unit's 3D camera module (DESIGN section 6)."""
