"""Signing in and out, registering, and one's own account (password, e-mail addresses, robots)."""
from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from .. import auth, permissions, users
from ..errors import ApiError, TooManyRequests, Unauthorized
from ..names import ValidationError
from ..store import AlreadyExists, LimitReached
from ..store.records import Principal, UserRecord
from . import bp, session
from .session import current_user


def _safe_next(target: str | None) -> str:
    """Only a path of this site (``/...``, not ``//host``) is followed after signing in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("web.home")


def signed_in() -> UserRecord:
    """The signed-in account, or a 401 page that offers to sign in."""
    user = current_user()
    if user is None:
        raise Unauthorized("sign in to see this page")
    return user


@bp.get("/signin")
def signin_form() -> str:
    return render_template("signin.html", next=request.args.get("next", ""), error=None)


@bp.post("/signin")
def signin() -> BaseResponse | tuple[str, int]:
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    target = request.form.get("next", "")
    try:
        user = auth.login(username, password)
    except ApiError as exc:  # 401 wrong credentials, 429 locked out: shown on the form
        return render_template("signin.html", next=target, error=exc.message, username=username), exc.status
    if permissions.is_robot(user):
        return render_template("signin.html", next=target, username=username,
                               error="robot accounts cannot sign in here; they are for docker login"), 403
    if not user.get("active"):
        return render_template("signin.html", next=target, username=username,
                               error="this account is not active yet"), 403
    session.begin(user)
    return redirect(_safe_next(target), 303)


@bp.post("/signout")
def signout() -> BaseResponse:
    session.end()
    return redirect(url_for("web.home"), 303)


@bp.get("/register")
def register_form() -> str:
    return render_template("register.html", policy=current_app.config["REGISTRATION"], error=None)


@bp.post("/register")
def register() -> BaseResponse | tuple[str, int]:
    policy = current_app.config["REGISTRATION"]
    form = request.form
    username = form.get("username", "").strip()
    email = form.get("email", "").strip()
    if form.get("password", "") != form.get("password_again", ""):
        return render_template("register.html", policy=policy, username=username, email=email,
                               error="the two passwords differ"), 400
    try:
        user = users.register_account(username, form.get("password", ""), email)
    except (ValidationError, Unauthorized, TooManyRequests) as exc:
        message = exc.message if isinstance(exc, ApiError) else str(exc)
        status = exc.status if isinstance(exc, TooManyRequests) else 400
        return render_template("register.html", policy=policy, username=username, email=email,
                               error=message), status
    except AlreadyExists:
        return render_template("register.html", policy=policy, username=username, email=email,
                               error="that username or e-mail address is taken"), 400
    if user.get("active"):
        session.begin(user)
        return redirect(url_for("web.account_page"), 303)
    return render_template("registered.html", policy=policy, username=user["username"]), 201


@bp.get("/account")
def account_page() -> str:
    user = signed_in()
    return _account_page(user, request.args.get("done"), None)


def _account_page(user: UserRecord, message: str | None, error: str | None) -> str:
    from . import manage
    return render_template("account.html", user=user, message=message, error=error,
                           robots=_robots_of(user), robots_namespace=user["username"],
                           **manage.webhook_page_context(user["username"], user))


def _robots_of(user: Principal) -> list[dict[str, Any]] | None:
    from . import manage
    return manage.robots_of(user["username"], user)


@bp.post("/account/password")
def change_password() -> BaseResponse | tuple[str, int]:
    user = signed_in()
    form = request.form
    error = None
    try:
        auth.login(user["username"], form.get("current_password", ""))
    except ApiError as exc:
        error = "the current password is wrong" if exc.status == 401 else exc.message
    if error is None and form.get("new_password", "") != form.get("new_password_again", ""):
        error = "the two new passwords differ"
    if error is None:
        try:
            changed = users.change_account(user["username"], password=form.get("new_password", ""))
        except ValidationError as exc:
            error = str(exc)
        else:
            session.refresh(changed)  # this session goes on; every other one ends
            return redirect(url_for("web.account_page", done="password changed"), 303)
    return _account_page(user, None, error), 400


@bp.post("/account/email")
def add_email() -> BaseResponse | tuple[str, int]:
    user = signed_in()
    try:
        users.change_account(user["username"], email=request.form.get("email", "").strip())
    except ValidationError as exc:
        error = str(exc)
    except AlreadyExists:
        error = "that e-mail address belongs to another account"
    except LimitReached as exc:
        error = f"an account may hold at most {exc.limit} e-mail addresses"
    else:
        return redirect(url_for("web.account_page", done="e-mail address added"), 303)
    return _account_page(user, None, error), 400
