"""``self-check URL``: run the docker client's index flows (docs/protocol.md 4-9) against a live index.

Each step is a :class:`Check` in :data:`CHECKS`, run in order; a step whose prerequisites did
not pass is skipped, and clean-up steps run whenever what they clean up was created. Another
part of the product (the built-in registry) adds its steps by inserting into ``CHECKS``.
Nothing secret is printed: not the password, not a token.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import secrets
import ssl
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import click

from .v1client import ProtocolError, Reply, V1Client, expect

ALREADY_EXISTS_BODY = b'"Username or email already exists"'


class CheckFailed(ProtocolError):
    """The index answered something a docker client would not accept."""


@dataclass
class Session:
    """What the steps share: where the index is, who acts, and what earlier steps produced."""

    base_url: str
    username: str
    password: str
    email: str
    ssl_context: ssl.SSLContext | None = None
    timeout: float = 30.0
    repository: str = ""
    image_id: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.client = V1Client(self.base_url, (self.username, self.password),
                               ssl_context=self.ssl_context, timeout=self.timeout)

    def basic(self) -> dict[str, str]:
        return self.client.basic()

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                *, raw: bytes | None = None, base_url: str | None = None) -> Reply:
        """One request to the index (or, with ``base_url``, a registry); ``raw`` sends bytes as is."""
        data = raw
        all_headers = dict(headers or {})
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            all_headers.setdefault("Content-Type", "application/json")
        try:
            return self.client.request(method, path, data, all_headers, host=base_url)
        except (OSError, http.client.HTTPException) as exc:
            # The URL actually tried: a registry endpoint the index advertised may differ from it.
            raise CheckFailed(f"cannot reach {base_url or self.base_url}: {exc}") from None


def header(reply: Reply, name: str) -> str:
    value = reply.headers.get(name)
    if not value:
        raise CheckFailed(f"response has no {name} header")
    return str(value)


@dataclass(frozen=True)
class Check:
    """One step. ``run`` returns a short detail or raises CheckFailed."""

    name: str
    run: Callable[[Session], str]
    needs: tuple[str, ...] = ()
    cleanup_of: str | None = None  # runs when that step passed, even after other failures


def check_ping(session: Session) -> str:
    reply = session.request("GET", "/v1/_ping")
    expect(reply, 200)
    version = header(reply, "X-Docker-Registry-Version")
    if reply.headers.get("X-Docker-Registry-Standalone", "").lower() not in ("false", "0"):
        raise CheckFailed("X-Docker-Registry-Standalone is not false: clients over https would "
                          "send Basic credentials to the registry")
    return f"registry API version {version}"


def check_login(session: Session) -> str:
    """docker login: register, and on 'already exists' or 401 fall through to a Basic GET."""
    body = {"username": session.username, "password": session.password, "auth": "", "email": session.email}
    registered = session.request("POST", "/v1/users/", body)
    if registered.status == 400 and registered.body != ALREADY_EXISTS_BODY:
        raise CheckFailed(f"registration refused: {registered.excerpt()}")
    if registered.status not in (201, 400, 401):
        expect(registered, 201, 400, 401)
    login = session.request("GET", "/v1/users/", headers=session.basic())
    if login.status == 403:
        raise CheckFailed(f"account {session.username} is not active: activate it "
                          "(activation link, or 'users activate') and run again")
    if login.status == 401:
        raise CheckFailed("wrong username or password")
    expect(login, 200)
    session.facts["registered"] = registered.status == 201
    return "account created and logged in" if registered.status == 201 else "logged in"


def check_push_announce(session: Session) -> str:
    reply = session.request("PUT", f"/v1/repositories/{session.repository}/",
                            [{"id": session.image_id, "Tag": "latest"}],
                            {**session.basic(), "X-Docker-Token": "true"})
    expect(reply, 200, 201)
    token = header(reply, "X-Docker-Token")
    if token.lower().startswith("token "):
        raise CheckFailed("X-Docker-Token starts with 'Token ': clients add that word themselves")
    endpoints = reply.headers.get_all("X-Docker-Endpoints") or []
    if not endpoints:
        raise CheckFailed("response has no X-Docker-Endpoints header: docker aborts the push")
    if any("://" in endpoint for endpoint in endpoints):
        raise CheckFailed(f"X-Docker-Endpoints must be bare host[:port], got {endpoints}")
    session.facts["write_token"] = token
    scheme = urlsplit(session.base_url).scheme
    session.facts["registry_url"] = f"{scheme}://{endpoints[0].split(',')[0].strip()}"
    return f"created {session.repository}, write token issued, endpoints {', '.join(endpoints)}"


def _validate(session: Session, token: str) -> list[Any]:
    """What a registry does with a token: GET images with only ``Authorization: Token``."""
    reply = session.request("GET", f"/v1/repositories/{session.repository}/images",
                            headers={"Authorization": f"Token {token}"})
    expect(reply, 200)
    images = reply.json()
    if not isinstance(images, list) or not all(isinstance(entry, dict) and "id" in entry for entry in images):
        raise CheckFailed("image list is not a JSON list of objects with an id")
    return images


def check_token_validation(session: Session) -> str:
    images = _validate(session, session.facts["write_token"])
    if session.image_id not in [entry["id"] for entry in images]:
        raise CheckFailed("the announced image is missing from the list a registry receives")
    return "a registry accepts the write token and sees the announced image"


class _TinyLayer:
    """A one-file image whose checksums are computed here, independently of the server's code."""

    CONTENT = b"written by docker-index self-check\n"
    MTIME = 1_400_000_000

    def __init__(self, image_id: str) -> None:
        self.json = json.dumps({"id": image_id, "created": "2014-05-13T00:00:00Z",
                                "container_config": {"Cmd": None}}, separators=(",", ":")).encode()
        info = tarfile.TarInfo("selfcheck.txt")
        info.size, info.mode, info.mtime = len(self.CONTENT), 0o644, self.MTIME
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w", format=tarfile.USTAR_FORMAT) as archive:
            archive.addfile(info, io.BytesIO(self.CONTENT))
        self.body = gzip.compress(tar.getvalue(), mtime=0)
        # TarSum v0 (docs/protocol.md 4.3): header fields then content, per entry; then json + sums.
        header_text = (f"nameselfcheck.txtmode{0o644}uid0gid0size{len(self.CONTENT)}mtime{self.MTIME}"
                       f"typeflag0linknameunamegnamedevmajor0devminor0")
        entry_sum = hashlib.sha256(header_text.encode() + self.CONTENT).hexdigest()
        self.tarsum = "tarsum+sha256:" + hashlib.sha256(self.json + entry_sum.encode()).hexdigest()
        self.payload = "sha256:" + hashlib.sha256(self.json + b"\n" + self.body).hexdigest()


def check_registry_upload(session: Session) -> str:
    """The registry half of a push: image json, layer, checksums and the tag (docs/protocol.md 4.1)."""
    layer = _TinyLayer(session.image_id)
    registry, token = session.facts["registry_url"], {"Authorization": f"Token {session.facts['write_token']}"}
    image = f"/v1/images/{session.image_id}"
    expect(session.request("PUT", f"{image}/json", raw=layer.json, base_url=registry,
                           headers={**token, "Content-Type": "application/json"}), 200)
    expect(session.request("PUT", f"{image}/layer", raw=layer.body, base_url=registry,
                           headers={**token, "Content-Type": "application/octet-stream"}), 200)
    expect(session.request("PUT", f"{image}/checksum", raw=b"", base_url=registry,
                           headers={**token, "X-Docker-Checksum": layer.tarsum,
                                    "X-Docker-Checksum-Payload": layer.payload}), 200)
    expect(session.request("PUT", f"/v1/repositories/{session.repository}/tags/latest",
                           body=session.image_id, base_url=registry, headers=token), 200, 201)
    session.facts["layer"] = layer
    return f"json, layer ({len(layer.body)} bytes), checksums and tag accepted by {registry}"


def check_registry_pull(session: Session) -> str:
    """The registry half of a pull: tags, ancestry, json and the layer, byte for byte."""
    listed = session.request("GET", f"/v1/repositories/{session.repository}/images",
                             headers={"X-Docker-Token": "true", **session.basic()})
    expect(listed, 200)
    registry = session.facts["registry_url"]
    token = {"Authorization": f"Token {header(listed, 'X-Docker-Token')}"}
    tags = session.request("GET", f"/v1/repositories/{session.repository}/tags", base_url=registry,
                           headers=token)
    expect(tags, 200)
    if tags.json() != {"latest": session.image_id}:
        raise CheckFailed(f"tags are {tags.excerpt()}, expected latest -> the pushed image")
    image = f"/v1/images/{session.image_id}"
    ancestry = session.request("GET", f"{image}/ancestry", base_url=registry, headers=token)
    expect(ancestry, 200)
    if ancestry.json() != [session.image_id]:
        raise CheckFailed(f"ancestry is {ancestry.excerpt()}")
    layer = session.facts["layer"]
    image_json = session.request("GET", f"{image}/json", base_url=registry, headers=token)
    expect(image_json, 200)
    if image_json.body != layer.json:
        raise CheckFailed("image json differs from what was pushed")
    body = session.request("GET", f"{image}/layer", base_url=registry, headers=token)
    expect(body, 200)
    if body.body != layer.body:
        raise CheckFailed(f"layer differs from what was pushed ({len(body.body)} bytes back)")
    return "tags, ancestry, json and the layer came back byte for byte"


def check_push_commit(session: Session) -> str:
    scheme_host = session.base_url.rstrip("/") + "/v1/"
    reply = session.request("PUT", f"/v1/repositories/{session.repository}/images", [],
                            {**session.basic(), "X-Docker-Token": "true", "X-Docker-Endpoints": scheme_host})
    if reply.status != 204:
        raise CheckFailed(f"expected exactly 204 (docker treats anything else as an error), got "
                          f"{reply.status}: {reply.excerpt()}")
    return "final image list accepted (204)"


def check_pull(session: Session) -> str:
    reply = session.request("GET", f"/v1/repositories/{session.repository}/images",
                            headers={**session.basic(), "X-Docker-Token": "true"})
    expect(reply, 200)
    token = header(reply, "X-Docker-Token")
    if session.image_id not in [entry.get("id") for entry in reply.json() if isinstance(entry, dict)]:
        raise CheckFailed("the pushed image is missing from the pull's image list")
    _validate(session, token)
    return "image list and a read token that a registry accepts"


def check_search(session: Session) -> str:
    name = session.repository.split("/", 1)[1]
    # Logged in, as docker search is: a new repository is private by default (issue 12).
    reply = session.request("GET", f"/v1/search?q={quote(name)}", headers=session.basic())
    expect(reply, 200)
    result = reply.json()
    if not isinstance(result, dict) or not isinstance(result.get("num_results"), int):
        raise CheckFailed("search answer is not {\"num_results\": int, \"results\": [...]}")
    found = [entry.get("name") for entry in result.get("results") or [] if isinstance(entry, dict)]
    if session.repository not in found:
        raise CheckFailed(f"search for {name!r} does not list {session.repository}")
    return f"{session.repository} found"


def check_delete(session: Session) -> str:
    path = f"/v1/repositories/{session.repository}/"
    first = session.request("DELETE", path, headers={**session.basic(), "X-Docker-Token": "true"})
    expect(first, 200, 202)
    token = header(first, "X-Docker-Token")
    if not token.endswith("access=delete"):
        raise CheckFailed("the delete answer carries no delete token")
    endpoint = session.base_url.rstrip("/") + "/v1/"
    confirmed = session.request("DELETE", path, headers={**session.basic(), "X-Docker-Endpoints": endpoint})
    expect(confirmed, 200, 202, 204)
    gone = session.request("GET", f"/v1/repositories/{session.repository}/images",
                           headers={"X-Docker-Token": "true"})
    if gone.status != 404:
        raise CheckFailed(f"repository still answers {gone.status} after its deletion")
    return f"{session.repository} deleted"


CHECKS: list[Check] = [
    Check("ping", check_ping),
    Check("login", check_login, needs=("ping",)),
    Check("push: announce repository", check_push_announce, needs=("login",)),
    Check("push: registry validates token", check_token_validation, needs=("push: announce repository",)),
    Check("push: upload to the registry", check_registry_upload, needs=("push: registry validates token",)),
    Check("push: final image list", check_push_commit, needs=("push: announce repository",)),
    Check("pull: image list and read token", check_pull, needs=("push: final image list",)),
    Check("pull: layer from the registry", check_registry_pull,
          needs=("push: upload to the registry", "pull: image list and read token")),
    Check("search", check_search, needs=("push: final image list",)),
    Check("delete throwaway repository", check_delete, cleanup_of="push: announce repository"),
]


def run_checks(session: Session, checks: list[Check] | None = None,
               echo: Callable[[str], None] = print) -> bool:
    """Run every check, print one line each; True when none failed."""
    outcome: dict[str, str] = {}
    for check in checks if checks is not None else CHECKS:
        prerequisites = (check.cleanup_of,) if check.cleanup_of else check.needs
        missing = [name for name in prerequisites if outcome.get(name) != "PASS"]
        if missing:
            outcome[check.name] = "SKIP"
            echo(f"SKIP  {check.name}: needs {', '.join(missing)}")
            continue
        started = time.monotonic()
        try:
            detail = check.run(session)
        except ProtocolError as exc:
            outcome[check.name] = "FAIL"
            echo(f"FAIL  {check.name}: {exc}")
            continue
        outcome[check.name] = "PASS"
        echo(f"PASS  {check.name}: {detail} ({(time.monotonic() - started) * 1000:.0f} ms)")
    failed = sum(1 for result in outcome.values() if result == "FAIL")
    skipped = sum(1 for result in outcome.values() if result == "SKIP")
    passed = len(outcome) - failed - skipped
    echo(f"self-check of {session.base_url}: {passed} of {len(outcome)} steps passed"
         f"{f', {failed} failed' if failed else ''}{f', {skipped} skipped' if skipped else ''}")
    return failed == 0 and skipped == 0


def new_session(url: str, username: str, password: str, email: str | None = None,
                ca_file: str | None = None, insecure: bool = False, timeout: float = 30.0) -> Session:
    """A session on a fresh throwaway repository ``<username>/selfcheck-<random>``."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an index URL like http://127.0.0.1:5000, got {url!r}")
    context = None
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=ca_file)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    suffix = secrets.token_hex(4)
    return Session(base_url=f"{parts.scheme}://{parts.netloc}", username=username, password=password,
                   email=email or f"{username}@selfcheck.invalid", ssl_context=context, timeout=timeout,
                   repository=f"{username}/selfcheck-{suffix}", image_id=secrets.token_hex(32))


@click.command("self-check")
@click.argument("url", default="http://127.0.0.1:5000")
@click.option("--username", required=True,
              help="Account to act as; registered on the way if registration is open. Its own "
                   "namespace gets a throwaway repository that is deleted at the end.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin instead of prompting.")
@click.option("--email", help="E-mail for the registration step (default <username>@selfcheck.invalid).")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False),
              help="Trust this certificate (for a self-signed https index).")
@click.option("--insecure", is_flag=True, help="Do not verify the https certificate.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for each answer.")
@click.option("--cleanup", is_flag=True,
              help="Afterwards also remove the account if this run registered it (and the throwaway "
                   "repository if its deletion failed). Needs the index's data dir on this machine "
                   "(--data-dir / INDEX_DATA_DIR): the v1 API cannot delete accounts.")
def self_check_command(url: str, username: str, password_stdin: bool, email: str | None,
                       ca_file: str | None, insecure: bool, timeout: float, cleanup: bool) -> None:
    """Run the docker client's index flows against the index at URL and print PASS/FAIL per step.

    Steps: ping, login (register if needed), push (announce, registry token check, upload of a
    one-file image to the registry, final list), pull (image list, read token, the image back byte
    for byte), search, and deletion of the throwaway repository.
    """
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True)
    try:
        session = new_session(url, username, password, email, ca_file, insecure, timeout)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None
    passed = run_checks(session, echo=click.echo)
    if cleanup:
        clean_up_locally(session, click.echo)
    if not passed:
        sys.exit(1)


def clean_up_locally(session: Session, echo: Callable[[str], None]) -> bool:
    """Remove what the run left behind, through the data dir of the index on this machine."""
    from ..config import configured_data_dir
    from .commands import holds_index
    data_dir = configured_data_dir()
    registered = session.facts.get("registered", False)
    if not holds_index(data_dir):
        echo(f"cleanup: no index data in {data_dir}: pass --data-dir, or on the index's machine run "
             f"docker-index users delete {session.username}" if registered else
             f"cleanup: no index data in {data_dir}; nothing removed")
        return False
    from ..store import RecordNotFound
    from .serving import create_app_or_exit
    app = create_app_or_exit({"DATA_DIR": data_dir})
    found = app.extensions["docker_index"]
    namespace, _, repository = session.repository.partition("/")
    try:
        removed = found.store.delete_repository(namespace, repository)
        if found.registry is not None:
            found.registry.repository_removed(removed)
        echo(f"cleanup: removed repository {session.repository}")
    except RecordNotFound:
        pass  # the delete step removed it already
    if registered:
        from ..accounts import AccountError, delete_account, plan_deletion, release_name
        try:
            plan = plan_deletion(found.store, session.username, "delete", None)
            delete_account(found.store, found.registry, plan)
            release_name(found.store, found.registry, session.username)  # only this run had taken the name
            echo(f"cleanup: removed account {session.username} (registered by this run)")
        except AccountError as exc:
            echo(f"cleanup: could not remove account {session.username}: {exc}")
    else:
        echo(f"cleanup: kept account {session.username} (it existed before this run)")
    found.store.close()
    return True
