"""Property-based tests: name validation, token round trips and tampering, image-list merging.

Example counts stay small for ``make test``; ``INDEX_PROPERTY_EXAMPLES`` raises them (make fuzz).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from index import names
from index.store import Store, _merge
from index.tokens import ACCESS_LEVELS, TokenError, TokenSigner

pytestmark = pytest.mark.fuzz  # schemathesis / hypothesis runs (longer under make fuzz)

EXAMPLES = int(os.environ.get("INDEX_PROPERTY_EXAMPLES", "150"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMESPACES = st.from_regex(r"[a-z0-9_]{1,10}(-[a-z0-9_]{1,9}){0,2}", fullmatch=True).filter(lambda s: len(s) >= 2)
# Valid repository names never hold ".." (names.repo_name refuses it anywhere).
REPOSITORIES = st.from_regex(r"[a-z0-9_.-]{1,40}", fullmatch=True).filter(lambda s: ".." not in s and set(s) != {"."})
# Small pools: quick to draw, and collisions (the interesting case for merging) are frequent.
IDS = st.sampled_from([f"{n:064x}" for n in range(1, 13)])
CHECKSUMS = st.sampled_from([f"tarsum+sha256:{n:064x}" for n in range(1, 7)])
SEPARATORS = ["/", "\\", "\x00", "\n", "\r", "..", "%2f"]


# -- names ----------------------------------------------------------------------------------

@PROPERTY
@given(st.text(max_size=40), st.text(max_size=40))
@example("alice\n", "app")
@example("alice", "app\n")
@example("..", "x")
@example("alice", "..")
@example("alice", ".")
def test_anything_accepted_is_a_plain_file_name(namespace, repository):
    try:
        name = names.repo_name(namespace, repository)
    except names.ValidationError:
        return
    for part in (name.namespace, name.repository):
        assert not any(separator in part for separator in SEPARATORS)
        assert part not in (".", "..") and part == part.strip()
        assert part.isascii() and part == part.lower()
    assert names.NAMESPACE_RE.fullmatch(name.namespace) and names.REPOSITORY_RE.fullmatch(name.repository)


@PROPERTY
@given(NAMESPACES, REPOSITORIES)
def test_every_valid_name_is_accepted_and_stays_inside_the_data_dir(namespace, repository):
    name = names.repo_name(namespace, repository)
    assert (name.namespace, name.repository) == (namespace, repository)
    root = Path("/srv/index-data")
    path = Store(root).namespace_file(name.namespace).path
    assert path.resolve().parent == root / "db" / "namespaces"


@PROPERTY
@given(NAMESPACES, REPOSITORIES, st.sampled_from(["\n", "\r\n", " ", "\x00", "/", "\t", "\u200b"]))
def test_a_trailing_or_embedded_odd_character_is_refused(namespace, repository, odd):
    with pytest.raises(names.ValidationError):
        names.repo_name(namespace + odd, repository)
    with pytest.raises(names.ValidationError):
        names.repo_name(namespace, repository + odd)
    with pytest.raises(names.ValidationError):
        names.image_id("a" * 63 + odd)


@PROPERTY
@given(st.one_of(st.none(), st.integers(), st.floats(), st.booleans(), st.lists(st.text(max_size=3)),
                 st.dictionaries(st.text(max_size=3), st.text(max_size=3))))
def test_wrong_types_are_validation_errors_never_crashes(value):
    for check in (names.username, names.image_id, names.tag, names.password, names.email):
        with pytest.raises(names.ValidationError):
            check(value)
    with pytest.raises(names.ValidationError):
        names.repo_name(value, "app")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=70),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20)


@PROPERTY
@given(JSON_VALUES)
def test_image_list_parsing_only_ever_raises_validation_errors(data):
    try:
        entries = names.image_list(data)
    except names.ValidationError:
        return
    for entry in entries:
        assert names.IMAGE_ID_RE.fullmatch(entry["id"])
        assert set(entry) <= {"id", "checksum", "Tag"}


@PROPERTY
@given(st.text(max_size=100))
def test_password_rule_is_bytes_not_characters(password):
    try:
        names.password(password)
    except names.ValidationError:
        return
    encoded = password.encode("utf-8")
    assert names.MIN_PASSWORD_CHARS <= len(password) and len(encoded) <= names.MAX_PASSWORD_BYTES
    assert "\x00" not in password


# -- tokens ---------------------------------------------------------------------------------

REPO_FULL_NAMES = st.builds(lambda n, r: f"{n}/{r}", NAMESPACES, REPOSITORIES)
USERS = st.one_of(st.none(), st.from_regex(r"[a-z0-9_]{4,30}", fullmatch=True))
SIGNER = TokenSigner("property-test-key", 3600)


@PROPERTY
@given(REPO_FULL_NAMES, st.sampled_from(ACCESS_LEVELS), USERS)
def test_tokens_round_trip(repository, access, user):
    token = SIGNER.issue(repository, access, user)
    for form in (token, "Token " + token, "token  " + token, token + "," + token):
        grant = SIGNER.verify(form)
        assert (grant.repository, grant.access, grant.user) == (repository, access, user)


@PROPERTY
@given(REPO_FULL_NAMES, st.sampled_from(ACCESS_LEVELS), USERS, st.data())
def test_a_tampered_signature_never_grants_anything_else(repository, access, user, data):
    token = SIGNER.issue(repository, access, user)
    signature, rest = token.split(",", 1)
    body = signature.removeprefix("signature=")
    position = data.draw(st.integers(0, len(body) - 1))
    replacement = data.draw(st.sampled_from("ABCabc0189-_.=").filter(lambda c: c != body[position]))
    tampered = body[:position] + replacement + body[position + 1:]
    try:
        grant = SIGNER.verify(f"signature={tampered},{rest}")
    except TokenError:
        return
    # Base64 has slack in the last character of each "."-separated part: a change there may
    # decode to the same bytes, and then (only then) the same grant comes back.
    part_ends = {index - 1 for index, char in enumerate(body) if char == "."} | {len(body) - 1}
    assert position in part_ends and replacement != "."
    assert (grant.repository, grant.access, grant.user) == (repository, access, user)


@PROPERTY
@given(REPO_FULL_NAMES, st.sampled_from(ACCESS_LEVELS), USERS, REPO_FULL_NAMES, st.sampled_from(ACCESS_LEVELS))
def test_header_fields_must_equal_the_signed_ones(repository, access, user, other_repository, other_access):
    assume((other_repository, other_access) != (repository, access))
    signature = SIGNER.issue(repository, access, user).split(",", 1)[0]
    with pytest.raises(TokenError):
        SIGNER.verify(f'{signature},repository="{other_repository}",access={other_access}')


@PROPERTY
@given(REPO_FULL_NAMES, st.sampled_from(ACCESS_LEVELS), st.text(min_size=1, max_size=20))
def test_another_key_never_verifies(repository, access, key):
    assume(key != "property-test-key")
    token = TokenSigner(key, 3600).issue(repository, access, None)
    with pytest.raises(TokenError):
        SIGNER.verify(token)


@PROPERTY
@given(st.text(max_size=300))
def test_garbage_is_a_token_error_never_a_crash(value):
    with pytest.raises(TokenError):
        SIGNER.verify(value)


# -- image-list merging ---------------------------------------------------------------------

IMAGE_LISTS = st.lists(st.fixed_dictionaries({"id": IDS}, optional={"checksum": st.one_of(st.just(""), CHECKSUMS)}),
                       max_size=8)
KNOWN = st.dictionaries(IDS, st.one_of(st.just(""), CHECKSUMS), max_size=8)


@PROPERTY
@given(KNOWN, IMAGE_LISTS)
def test_merging_keeps_every_id_and_every_known_checksum(known, images):
    merged = _merge(known, images)
    assert set(merged) == set(known) | {image["id"] for image in images}
    for image_id, checksum in known.items():
        if checksum:
            assert merged[image_id] == checksum  # the first known checksum is never replaced
    for image in images:
        if not known.get(image["id"]) and image.get("checksum"):
            first = next(i.get("checksum") for i in images if i["id"] == image["id"] and i.get("checksum"))
            assert merged[image["id"]] == first


@PROPERTY
@given(KNOWN, IMAGE_LISTS)
def test_merging_is_idempotent_and_empty_lists_change_nothing(known, images):
    once = _merge(known, images)
    assert _merge(once, images) == once
    assert _merge(once, []) == once
    assert known == _merge(known, [])


@PROPERTY
@given(KNOWN, IMAGE_LISTS, IMAGE_LISTS)
def test_merging_in_steps_equals_merging_at_once(known, first, second):
    assert _merge(_merge(known, first), second) == _merge(known, first + second)
