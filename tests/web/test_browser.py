"""The web interface in a real browser: Debian's chromium, driven by Selenium through chromedriver.

The index runs as ``make run`` runs it (``python -m index serve``, gunicorn) on a free loopback
port. Each journey is what a person does, click by click; every page visited is saved as a
screenshot under ``test-artifacts/browser/`` (or ``$INDEX_TEST_ARTIFACTS``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from index.ops.v1client import V1Client, basic_header
from tests.processes import ROOT, clean_env, free_port, stop, wait_for_http
from tests.registry.layers import Layer, chain
from tests.system import require

ADMIN = ("root", "rootpass1")
ARTIFACTS = Path(os.environ.get("INDEX_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "browser"
WAIT_SECONDS = 10


class Server:
    def __init__(self, url: str, host: str, data_dir: Path) -> None:
        self.url, self.host, self.data_dir = url, host, data_dir


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("browser-index") / "data"
    port = free_port()
    log_path = data_dir.parent / "server.log"
    settings = {"INDEX_DATA_DIR": str(data_dir), "INDEX_PORT": str(port), "INDEX_WORKERS": "2",
                "INDEX_BCRYPT_ROUNDS": "4", "INDEX_ADMIN_USERNAME": ADMIN[0],
                "INDEX_ADMIN_PASSWORD": ADMIN[1], "INDEX_ACTIVITY_FLUSH_SECONDS": "1",
                "INDEX_SECRET_KEY": "browser-test-secret-key-of-enough-length",
                # Journeys start from public repositories and make them private in the pages.
                "INDEX_DEFAULT_VISIBILITY": "public",
                "INDEX_WEBHOOK_ALLOW_PRIVATE": "true"}  # a webhook to 127.0.0.1 (never delivered)
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "index", "serve"], cwd=ROOT,
                                   env=clean_env(settings), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process, log_path, timeout=30)
        yield Server(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", data_dir)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def driver_factory():
    chromium = require("chromium", "chromium")
    chromedriver = require("chromedriver", "chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    started = []

    def start(width: int = 1280, height: int = 1000):
        options = Options()
        options.binary_location = chromium
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                         f"--user-data-dir={tempfile.mkdtemp(prefix='index-chromium-')}",
                         f"--window-size={width},{height}"):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
        driver.implicitly_wait(WAIT_SECONDS)
        started.append(driver)
        return driver

    yield start
    for driver in started:
        driver.quit()


class Person:
    """One browser window used the way a person uses it; screenshots every page it lands on."""

    def __init__(self, driver, server: Server, journey: str) -> None:
        self.driver, self.server, self.journey, self.shots = driver, server, journey, 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def screenshot(self, what: str) -> None:
        self.shots += 1
        self.driver.save_screenshot(str(ARTIFACTS / f"{self.journey}-{self.shots:02d}-{what}.png"))

    def open(self, path: str, what: str) -> None:
        self.driver.get(self.server.url + path)
        self.screenshot(what)

    def find(self, css: str):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str):
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def link(self, text: str):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.LINK_TEXT, text)

    def click_link(self, text: str, what: str) -> None:
        self.link(text).click()
        self.screenshot(what)

    def fill(self, field: str, value: str) -> None:
        element = self.find(f"#{field}")
        element.clear()
        element.send_keys(value)

    def submit(self, button_text: str, what: str) -> None:
        from selenium.webdriver.common.by import By
        button = self.driver.find_element(By.XPATH, f"//button[normalize-space(.)={json.dumps(button_text)}]")
        button.click()
        self.screenshot(what)

    def text(self) -> str:
        return self.find("body").text

    def sign_in(self, username: str, password: str) -> None:
        self.open("/", "home")
        self.click_link("Sign in", "signin")
        self.fill("username", username)
        self.fill("password", password)
        self.submit("Sign in", "signed-in")
        assert "Sign out" in self.text(), self.text()

    def sign_out(self) -> None:
        self.submit("Sign out", "signed-out")
        assert "Sign in" in self.text()


class CommandLayer(Layer):
    """A layer whose image json says which command made it (what the history shows)."""

    command: list[str] = []

    @property
    def json_bytes(self) -> bytes:
        data = {"id": self.image_id, "created": "2026-11-30T12:00:00.123456789Z",
                "container_config": {"Cmd": self.command}}
        if self.parent:
            data["parent"] = self.parent
        return json.dumps(data, separators=(",", ":")).encode()


def _register(server: Server, username: str, password: str) -> None:
    client = V1Client(server.host)
    body = json.dumps({"username": username, "password": password, "email": f"{username}@example.com"})
    reply = client.request("POST", "/v1/users/", body.encode(), {"Content-Type": "application/json"})
    assert reply.status == 201, reply.body


def _push(server: Server, username: str, password: str, remote: str, salt: str) -> list[Layer]:
    layers = chain([f"{salt}{n:062x}" for n in (1, 2)], salt=salt)  # salt: two hex digits
    commands = [["/bin/sh", "-c", "#(nop) ADD file:base in /"], ["/bin/sh", "-c", "apk add --no-cache curl"]]
    typed = []
    for layer, command in zip(layers, commands, strict=False):
        found = CommandLayer(layer.image_id, layer.parent, layer.entries)
        found.command = command
        typed.append(found)
    V1Client(server.host, (username, password)).push(remote, typed, tag="latest")
    return typed


@pytest.fixture
def person(request, server, driver_factory) -> Person:
    return Person(driver_factory(), server, request.node.name.removeprefix("test_"))


def test_anonymous_browse_and_search(server, person):
    _register(server, "anna_b", "secret1")
    _push(server, "anna_b", "secret1", "anna_b/searchable", "a1")
    person.open("/", "home")
    assert "docker login " + server.host in person.text()
    person.fill("q", "searchable")
    person.submit("Search", "results")
    assert "1 repository" in person.text()
    person.click_link("anna_b/searchable", "repository")
    assert f"docker pull {server.host}/anna_b/searchable" in person.text()


def test_sign_in_push_then_see_tags_and_history(server, person):
    _register(server, "paula_b", "secret1")
    layers = _push(server, "paula_b", "secret1", "paula_b/tool", "b2")
    person.sign_in("paula_b", "secret1")
    person.open("/repository/paula_b/tool", "repository")
    text = person.text()
    assert "latest" in text and layers[-1].image_id[:12] in text
    assert "apk add --no-cache curl" in text  # the layer history's command
    assert "by paula_b" in text  # last push by whom
    rows = person.find_all("table.history tbody tr")
    assert len(rows) == 2


def test_edit_a_description(server, person):
    _register(server, "dora_b", "secret1")
    _push(server, "dora_b", "secret1", "dora_b/described", "c3")
    person.sign_in("dora_b", "secret1")
    person.open("/repository/dora_b/described", "repository")
    person.find("details summary").click()
    person.fill("description", "# Our tool\n\nIt does **things**. <script>alert(1)</script>")
    person.submit("Save description", "saved")
    heading = person.find(".description h1")
    assert heading.text == "Our tool"
    assert person.find(".description strong").text == "things"
    assert "<script>alert(1)</script>" in person.find(".description").text  # shown, not run


def test_change_the_password(server, person):
    _register(server, "carl_b", "secret1")
    person.sign_in("carl_b", "secret1")
    person.click_link("Account", "account")
    person.fill("current_password", "secret1")
    person.fill("new_password", "secret2")
    person.fill("new_password_again", "secret2")
    person.submit("Change the password", "changed")
    assert "password changed" in person.text()
    person.sign_out()
    person.sign_in("carl_b", "secret2")


def test_admin_approves_and_deletes(server, person):
    _register(server, "eve_b", "secret1")
    person.sign_in(*ADMIN)
    person.click_link("Administration", "administration")
    person.submit("Deactivate eve_b", "deactivated")
    assert "deactivated eve_b" in person.text()
    person.submit("Activate eve_b", "activated")
    person.submit("Delete eve_b", "deleted")
    assert "deleted eve_b" in person.text()


def test_make_private_and_it_vanishes_for_another_account(server, person, driver_factory):
    _register(server, "olga_b", "secret1")
    _register(server, "pete_b", "secret1")
    _push(server, "olga_b", "secret1", "olga_b/secretive", "d4")
    other = Person(driver_factory(), server, "make_private-other")
    other.sign_in("pete_b", "secret1")
    other.open("/search?q=secretive", "search-before")
    assert "olga_b/secretive" in other.text()
    person.sign_in("olga_b", "secret1")
    person.open("/repository/olga_b/secretive", "repository")
    person.click_link("Settings and permissions", "settings")
    person.find("input[name=visibility][value=private]").click()
    person.submit("Save visibility", "private")
    assert "olga_b/secretive is now private" in person.text()
    other.open("/search?q=secretive", "search-after")
    assert "olga_b/secretive" not in other.text()
    other.open("/repository/olga_b/secretive", "repository-after")
    assert "Not found" in other.text()


def test_organization_team_robot_grant_and_revoke(server, person, driver_factory):
    _register(server, "rita_b", "secret1")
    _register(server, "sam_b", "secret1")
    person.sign_in("rita_b", "secret1")
    person.click_link("Account", "account")
    person.click_link("Create an organization", "new-organization")
    person.fill("name", "acme_b")
    person.fill("email", "ops@acme.example")
    person.submit("Create organization", "organization")
    assert "organization acme_b created" in person.text()
    person.fill("team", "devs")
    person.submit("Save team", "team")
    person.fill("member-devs", "sam_b")
    person.submit("Add member to devs", "member")
    assert "sam_b added to devs" in person.text()
    person.fill("robot-short", "ci")
    person.submit("Create robot", "robot")
    token = person.find("code.token").text
    assert len(token) > 20
    assert V1Client(server.host, ("acme_b+ci", token)).request(
        "GET", "/v1/users/", headers=basic_header("acme_b+ci", token)).status == 200  # docker login
    # A webhook hearing every repository of acme_b; its secret is shown this once.
    person.fill("hook-url", "http://127.0.0.1:9/acme-hook")
    person.submit("Add webhook", "organization-webhook")
    assert "shown this once" in person.text() and "http://127.0.0.1:9/acme-hook" in person.text()
    _push(server, "rita_b", "secret1", "acme_b/tool", "e5")
    person.open("/repository/acme_b/tool", "repository")
    person.click_link("Settings and permissions", "settings")
    person.find("input[name=visibility][value=private]").click()
    person.submit("Save visibility", "private")
    member = Person(driver_factory(), server, "organization-member")
    member.sign_in("sam_b", "secret1")
    member.open("/repository/acme_b/tool", "hidden")
    assert "Not found" in member.text()
    from selenium.webdriver.support.ui import Select
    Select(person.find("#grant-team")).select_by_visible_text("devs")
    Select(person.find("#grant-team-role")).select_by_visible_text("read")
    person.submit("Grant to team", "granted-devs")
    assert "granted read to devs" in person.text()
    member.open("/repository/acme_b/tool", "visible")
    assert "acme_b/tool" in member.find("h1").text
    person.submit("Revoke team devs", "revoked")
    member.open("/repository/acme_b/tool", "hidden-again")
    assert "Not found" in member.text()


def test_readable_at_phone_width(server, driver_factory):
    driver = driver_factory(390, 844)
    person = Person(driver, server, "phone")
    for path, what in (("/", "home"), ("/search?q=", "search"), ("/signin", "signin")):
        person.open(path, what)
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at phone width"
