"""The one way a new account is made: validate, hash the password, store.

Registration (``POST /v1/users``), the bootstrap admin (``INDEX_ADMIN_USERNAME``) and the CLI's
``users create`` all call :func:`create_account`.
"""
from __future__ import annotations

from typing import Any

from . import names
from .passwords import hash_password
from .store import Store


def create_account(store: Store, username: str, password: str, email: str, *, active: bool,
                   admin: bool = False, bcrypt_rounds: int) -> dict[str, Any]:
    """Store a new account; the values are checked in this order first.

    Raises :class:`~index.names.ValidationError` for an invalid username, password or e-mail and
    :class:`~index.store.errors.AlreadyExists` when the username or the e-mail is taken.
    """
    username = names.username(username)
    password = names.password(password)
    email = names.email(email)
    return store.create_user(username, hash_password(password, bcrypt_rounds), email,
                             active=active, admin=admin)
