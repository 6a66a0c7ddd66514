"""The benchmark's data sets: accounts and repositories like a public index's, written through the
``Store`` API (or, for large sets, its files written whole and checked against it), never HTTP."""
from __future__ import annotations

import base64
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the index package, from this checkout

from index.passwords import hash_password  # noqa: E402
from index.store import Store  # noqa: E402

BCRYPT_ROUNDS = 12            # the production default (INDEX_BCRYPT_ROUNDS)
BULK_ABOVE = 20_000            # larger data sets are written namespace file by namespace file

# Search terms a person would type: common words, rarer ones, a namespace, one that matches nothing.
SEARCH_TERMS = ["nginx", "redis", "python", "web", "api", "postgres", "alpine", "node",
                "minimal", "worker", "team3", "ubuntu", "grafana", "proxy", "zzz-nothing"]

WORDS = ("nginx redis python web api postgres alpine node golang java ruby php mysql mongo "
         "kafka rabbit elastic grafana prometheus proxy cache queue worker cron backup builder "
         "runner agent gateway auth ldap mail smtp dns vpn ssh git jenkins gitlab registry "
         "ubuntu debian centos fedora busybox static site blog shop store admin dashboard "
         "metrics logs tracing search index ml notebook spark hadoop flink airflow etl "
         "sensor iot home media plex music video image thumb resize pdf docs wiki chat bot "
         "game minecraft server client sdk cli tools base dev test staging prod demo").split()
ADJECTIVES = "minimal small fast secure tiny official custom patched hardened simple".split()
KINDS = "image container build service stack base setup".split()
OWNERS = "user team acme ops dev lab corp studio data cloud".split()


@dataclass
class BenchUser:
    username: str
    password: str

    @property
    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def image_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def namespace_sizes(total: int, rng: random.Random) -> list[int]:
    """Repositories per namespace, heavy-tailed like a public index: most own a few, some many."""
    sizes: list[int] = []
    remaining = total
    while remaining > 0:
        size = min(remaining, 1500, max(1, int(rng.paretovariate(1.15))))
        sizes.append(size)
        remaining -= size
    return sizes


def repo_name(rng: random.Random) -> str:
    shape = rng.random()
    if shape < 0.4:
        return rng.choice(WORDS)
    if shape < 0.8:
        return f"{rng.choice(WORDS)}-{rng.choice(WORDS)}"
    return f"{rng.choice(WORDS)}{rng.randint(1, 99)}"


def description(rng: random.Random, name: str) -> str:
    if rng.random() < 0.3:
        return ""  # many repositories have none
    return (f"{rng.choice(ADJECTIVES).capitalize()} {name.split('-')[0]} "
            f"{rng.choice(KINDS)} for {rng.choice(WORDS)} and {rng.choice(WORDS)}")


def generate(repositories: int, rng: random.Random) -> Iterator[tuple[str, list[tuple[str, list[dict], str]]]]:
    """(namespace, [(name, images, description)]) with heavy-tailed namespace sizes; about 1% of
    the repositories go to ``library``."""
    library = repositories // 100
    sizes = [library] if library else []
    sizes += namespace_sizes(repositories - library, rng)
    for index, size in enumerate(sizes):
        namespace = "library" if index == 0 and library else f"{rng.choice(OWNERS)}{index}"
        taken: dict[str, tuple[str, list[dict], str]] = {}
        while len(taken) < size:
            name = repo_name(rng)
            if name in taken:
                name = f"{name}-{len(taken)}"
            images = [{"id": image_id(rng)} for _ in range(rng.randint(0, 2))]
            images.append({"id": image_id(rng), "Tag": "latest"})
            taken[name] = (name, images, description(rng, name))
        yield namespace, list(taken.values())


def populate(data_dir: Path, repositories: int, users: list[BenchUser], seed: int,
             bulk: bool) -> int:
    """Create the bench accounts (each with one repository ``app``) and ``repositories`` more.

    Everything goes through the public Store API, except with ``bulk``: then each namespace file
    is written whole in the store's current on-disk form (one announce per repository costs a
    read-modify-write of its namespace file: minutes at 100,000), and read back through the Store
    API to check that the form still matches. Returns the number of namespaces.
    """
    rng = random.Random(seed)
    store = Store(data_dir)
    store.open()
    for user in users:
        store.create_user(user.username, hash_password(user.password, BCRYPT_ROUNDS),
                          f"{user.username}@example.com", active=True)
        store.announce_repository(user.username, "app",
                                  [{"id": image_id(rng)}, {"id": image_id(rng), "Tag": "latest"}],
                                  owner=user.username)
    count = 0
    for namespace, repos in generate(repositories, rng):
        count += 1
        if bulk and namespace != "library":
            write_namespace_file(store, namespace, repos)
            continue
        for name, images, text in repos:
            store.announce_repository(namespace, name, images, owner=namespace)
            if text:
                store.set_description(namespace, name, text)
    if bulk:
        check_bulk_form(data_dir, store)
    return count


def write_namespace_file(store: Store, namespace: str, repos: list[tuple[str, list[dict], str]]) -> None:
    """One namespace's repositories as announce_repository + set_description would leave them."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    table = {name: {"namespace": namespace, "name": name, "description": text, "owner": namespace,
                    "state": "active", "created": stamp,
                    "images": {image["id"]: image.get("checksum", "") for image in images},
                    "updated": stamp}
             for name, images, text in repos}
    path = store.db_dir / "namespaces" / f"{namespace}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"repositories": table}, separators=(",", ":")))


def check_bulk_form(data_dir: Path, store: Store) -> None:
    """Fail loudly if bulk-written records differ from ones the Store API writes."""
    reference_dir = Path(tempfile.mkdtemp(prefix="index-bench-form-", dir=data_dir.parent))
    try:
        reference = Store(reference_dir)
        reference.open()
        images = [{"id": "a" * 64}, {"id": "b" * 64, "Tag": "latest"}]
        reference.announce_repository("formcheck", "repo", images, owner="formcheck")
        reference.set_description("formcheck", "repo", "text")
        expected = reference.get_repository("formcheck", "repo")
        write_namespace_file(store, "formcheck", [("repo", images, "text")])
        written = Store(data_dir)
        written.open()  # parses every file, as a starting server does
        actual = written.get_repository("formcheck", "repo")
        ignore = {"created", "updated"}
        if actual is None or {k: v for k, v in actual.items() if k not in ignore} != \
                {k: v for k, v in expected.items() if k not in ignore}:
            raise RuntimeError("the store's on-disk form changed: update write_namespace_file "
                               f"(expected {expected}, read back {actual})")
        for leftover in (store.db_dir / "namespaces").glob("formcheck.json*"):
            leftover.unlink()
    finally:
        shutil.rmtree(reference_dir, ignore_errors=True)


def make_data_dir(parent: Path, label: str, repositories: int, users: list[BenchUser]) -> tuple[Path, int, float]:
    """Fill a data dir, on tmpfs first when there is one (fsync there is free), then copy it."""
    started = time.perf_counter()
    scratch_parent = Path("/dev/shm") if Path("/dev/shm").is_dir() else parent
    scratch = Path(tempfile.mkdtemp(prefix=f"index-bench-{label}-", dir=scratch_parent))
    try:
        namespaces = populate(scratch, repositories, users, seed=repositories,
                              bulk=repositories > BULK_ABOVE)
        target = parent / label
        shutil.copytree(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target, namespaces, time.perf_counter() - started
