"""Presentation: the PyQt6 console and the ``naiad`` command line.  Nothing imports this package."""

__version__ = "0.1.0"  # the distribution's version (pyproject.toml reads it from here)
