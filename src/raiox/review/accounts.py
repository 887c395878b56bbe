"""Panel accounts: their roles and argon2id password hashes.

Apart from the panel's sign-in (`review.auth`, FastAPI) so that `raiox users add` never imports the web framework.
"""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES = ("reviewer", "admin")
hasher = PasswordHasher()  # argon2id with the library's recommended parameters


def hash_password(password: str) -> str:
    return hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
