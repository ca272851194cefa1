"""The simulator's camera: per-unit ground truth, the renderer, the jig's poses and the CAMERA_* service."""
