"""Customer and operator accounts: argon2id passwords, login with lockout, JWT access tokens with rotating
refresh tokens, and 6-digit confirmation codes for sensitive changes (docs/accounts.md).

Public API: :class:`AuthConfig`, :class:`Caller`, :class:`Passwords`, and the services in
:mod:`accounts.service` (create_account, authenticate, start_session, rotate, revoke) and
:mod:`accounts.confirm`.
"""

from accounts.config import AuthConfig
from accounts.passwords import Passwords
from accounts.tokens import Caller, decode_access, issue_access

__all__ = ["AuthConfig", "Caller", "Passwords", "decode_access", "issue_access"]
