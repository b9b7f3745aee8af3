"""Control-centre users: organisation + role accounts, argon2id password hashes, signed sessions.

Pure cores: `passwords` (hash and verify), `sessions` (issue and check a signed, expiring
bearer token). Adapter: `store.UserStore` (one SQLModel table on the controller's database).
`create_user(...)` is what `vigil-controller user add` and the tests call.
"""

from controller.users.passwords import PasswordError, hash_password, verify_password
from controller.users.sessions import SessionClaims, SessionError, check_session, issue_session
from controller.users.store import UserAccountRow, UserError, UserStore, create_user

__all__ = [
    "PasswordError",
    "SessionClaims",
    "SessionError",
    "UserAccountRow",
    "UserError",
    "UserStore",
    "check_session",
    "create_user",
    "hash_password",
    "issue_session",
    "verify_password",
]
