"""Fixtures for the web pages: a browser-like client that signs in and sends CSRF tokens."""
from __future__ import annotations

import re

import pytest

from tests.conftest import ADMIN

_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """A test client used as a person would: read a page, then submit its form."""

    def __init__(self, client) -> None:
        self.client = client

    def get(self, url: str, **kwargs):
        return self.client.get(url, **kwargs)

    def csrf(self, page: str = "/signin") -> str:
        match = _CSRF_RE.search(self.client.get(page).get_data(as_text=True))
        assert match, f"no CSRF token on {page}"
        return match.group(1)

    def post(self, url: str, data: dict | None = None, *, page: str = "/signin", csrf: bool = True):
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.csrf(page)
        return self.client.post(url, data=form)

    def sign_in(self, username: str, password: str):
        return self.post("/signin", {"username": username, "password": password, "next": ""})


@pytest.fixture
def browser(client) -> Browser:
    return Browser(client)


@pytest.fixture
def admin_browser(app) -> Browser:
    found = Browser(app.test_client())
    assert found.sign_in(*ADMIN).status_code == 303
    return found
