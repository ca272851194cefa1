"""Presentation: the PyQt6 console and the ``naiad`` command line.  Nothing imports this package."""
