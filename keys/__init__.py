"""Payment and identity keys: AES DUKPT, TR-31 key blocks, key check values, key stores, injection.

No clear key ever leaves this package in a log, an exception, the ledger or a file: keys are ``bytes``
held by the caller for the shortest time, and everything that is shown is a key check value.
"""
