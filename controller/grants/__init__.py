"""Share grants: organisations and policy, signed delegable grants, revocation.

Pure cores (no I/O, time passed in): `model`, `policy`, `mint`, `narrowing`, `chain`,
`access`, `revocation`, `codec`. Adapters: `keys` (files in `<data_dir>/keys/`), `store`
(revocations, download uses, grants seen), `service` (wiring with the audit log).
Every refusal is `errors.GrantRefused(reason, message)`.
"""
