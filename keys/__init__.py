"""Payment and identity keys: AES DUKPT, TR-31 key blocks, key check values and the key stores.

No clear key ever leaves this package in a log, an exception, the ledger or a file: keys stay in a key store
(an HSM's objects, or the software store's wiped buffers) or in the caller's ``bytes`` for the shortest time,
and everything that is shown is a key check value.
"""
