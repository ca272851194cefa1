"""The simulator's camera: per-unit ground truth, the renderer, the jig's poses and the CAMERA_* service."""

DEFAULT_VIEWS = 20  # a calibration set's views (calibration_set.write_set); here so the CLI need not load OpenCV
DEFAULT_MODEL = "df2"
