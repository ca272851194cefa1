"""The sandbox platform: the gateway API of docs/platform-api.md served over HTTPS from its own database.

For demos, training and tests; a station talks to it exactly as to the real platform (the client never
imports this package).  Business handlers register themselves per method in :mod:`.registry`; the tables
they share are in :mod:`.models`.
"""
