"""Enrollment (issue 16): devices obtain their certificate with a single-use token and a CSR
(the key is born on the device), renew it with the same key, and are revoked at once when
retired or replaced. rules.py decides (pure), store.py keeps the state in the shared
database, service.py signs, listener.py serves Enroll on its own server-authenticated port,
guard.py refuses revoked certificates on every replica's mutual-TLS port; operations.py
is what the CLI (cli.py) and the installer API (controller/api/routes/install.py) do.
"""
