"""Enrollment: the merchant platform's gateway API, the station's client for it, and its sandbox server.

- :mod:`enrollment.gateway` is the wire both sides share (signed parameters, signed responses, codes), as
  ``terminal.protocol`` is for the terminal;
- :mod:`enrollment.config` is the station's platform configuration (``--platform-config``);
- :mod:`enrollment.client` is the station's side: pooled HTTPS, deadlines, retries, signature checks;
- :mod:`enrollment.sandbox` is a platform of our own for demos, training and tests, a real HTTP server with its
  own database.  It is to the platform what the simulator is to the terminal: the client never imports it.

See ``docs/platform-api.md``.
"""
