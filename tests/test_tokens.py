"""index/tokens.py: issue, verify, tamper, expiry, key fallbacks, header parsing (docs/protocol.md 9)."""
from __future__ import annotations

import re

import pytest
from itsdangerous.timed import TimestampSigner

from index.tokens import Grant, TokenError, TokenSigner, parse_fields

TTL = 600
WIRE_RE = re.compile(r'signature=[A-Za-z0-9_.\-]+,repository="([^"]+)",access=(read|write|delete)')


@pytest.fixture
def signer() -> TokenSigner:
    return TokenSigner("k1", TTL)


@pytest.fixture
def clock(monkeypatch):
    """itsdangerous's timestamp, under the test's control (no sleeping)."""
    now = {"t": 1_700_000_000}
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: now["t"])
    return now


@pytest.mark.parametrize("repository,access,user", [
    ("alice/app", "write", "alice"),
    ("library/busybox", "read", None),      # anonymous pull of a library repository
    ("alice/app", "delete", "admin"),
])
def test_round_trip(signer, repository, access, user):
    token = signer.issue(repository, access, user)
    match = WIRE_RE.fullmatch(token)
    assert match and match.groups() == (repository, access)
    assert not token.startswith("Token ")   # the client adds the prefix itself
    assert signer.verify(token) == Grant(repository, access, user)
    assert signer.verify(f"Token {token}") == Grant(repository, access, user)


def test_tokens_are_reusable_until_they_expire(signer):
    token = signer.issue("alice/app", "write", "alice")
    for _ in range(5):  # docker-registry re-validates the same token on every request
        assert signer.verify(token).access == "write"


def test_unknown_access_is_not_issued(signer):
    with pytest.raises(ValueError):
        signer.issue("alice/app", "admin", "alice")


def _signature(token: str) -> str:
    return token.split(",", 1)[0].removeprefix("signature=")


@pytest.mark.parametrize("tamper", [
    lambda t: t.replace('repository="alice/app"', 'repository="alice/other"'),
    lambda t: t.replace('repository="alice/app"', 'repository="library/app"'),
    lambda t: t.replace("access=read", "access=write"),
    lambda t: t.replace("access=read", "access=delete"),
    lambda t: t.replace('repository="alice/app"', "repository=alice/other"),
    lambda t: t.replace('repository="alice/app",', ""),
    lambda t: t.replace(",access=read", ""),
])
def test_header_fields_must_equal_the_signed_ones(signer, tamper):
    token = signer.issue("alice/app", "read", "alice")
    with pytest.raises(TokenError, match="does not match"):
        signer.verify(tamper(token))


# Payload characters, and signature characters that carry only data bits (the final base64
# character of the signature also holds padding bits, so changing it may change nothing).
@pytest.mark.parametrize("position", [0, 5, -2, -3, -10])
def test_tampered_signature_is_refused(signer, position):
    token = signer.issue("alice/app", "write", "alice")
    signature = _signature(token)
    chars = list(signature)
    chars[position] = "A" if chars[position] != "A" else "B"
    with pytest.raises(TokenError, match="signature is not valid"):
        signer.verify(token.replace(signature, "".join(chars)))


def test_signature_from_another_key_is_refused(signer):
    foreign = TokenSigner("other-key", TTL).issue("alice/app", "write", "alice")
    with pytest.raises(TokenError, match="signature is not valid"):
        signer.verify(foreign)


def test_signature_of_another_token_cannot_be_moved(signer):
    read = signer.issue("alice/app", "read", None)
    write = signer.issue("alice/app", "write", "alice")
    forged = write.replace(_signature(write), _signature(read))
    with pytest.raises(TokenError, match="does not match"):
        signer.verify(forged)


def test_expiry(clock):
    signer = TokenSigner("k1", 60)
    token = signer.issue("alice/app", "write", "alice")
    clock["t"] += 60
    assert signer.verify(token).repository == "alice/app"  # exactly at the limit: still valid
    clock["t"] += 1
    with pytest.raises(TokenError, match="expired"):
        signer.verify(token)


def test_a_token_from_the_future_is_refused(clock):
    signer = TokenSigner("k1", 60)
    token = signer.issue("alice/app", "write", "alice")
    clock["t"] -= 10
    with pytest.raises(TokenError, match="expired"):
        signer.verify(token)


def test_key_fallbacks_verify_old_tokens_and_sign_with_the_new_key():
    old = TokenSigner("old-key", TTL)
    rotated = TokenSigner("new-key", TTL, fallback_keys=["old-key"])
    old_token = old.issue("alice/app", "read", None)
    assert rotated.verify(old_token).repository == "alice/app"
    new_token = rotated.issue("alice/app", "read", None)
    assert TokenSigner("new-key", TTL).verify(new_token).access == "read"
    with pytest.raises(TokenError):
        old.verify(new_token)


@pytest.mark.parametrize("header", [
    "",
    "Token",
    "Token ",
    "Token repository=\"alice/app\",access=write",       # no signature
    "Token signature=,repository=\"alice/app\",access=write",
    "Token garbage",
    "Token signature",
    "Token =x",
    "Token signature=abc,repository=\"alice/app\",access=write",  # not a signature we made
    "Token signature=abc;repository=alice/app",
])
def test_malformed_headers_are_token_errors(signer, header):
    with pytest.raises(TokenError):
        signer.verify(header)


def test_the_same_token_joined_with_comma_is_accepted(signer):
    token = signer.issue("alice/app", "read", None)
    assert signer.verify(f"Token {token},{token}").repository == "alice/app"


def test_docker_07_joins_with_comma_space(signer):
    token = signer.issue("alice/app", "read", None)
    assert signer.verify(f"Token {token}, {token}").access == "read"


def test_two_different_tokens_joined_are_refused(signer):
    first = signer.issue("alice/app", "read", None)
    second = signer.issue("alice/other", "read", None)
    with pytest.raises(TokenError, match="conflicting"):
        signer.verify(f"Token {first},{second}")


@pytest.mark.parametrize("value,expected", [
    ('signature=abc,repository="foo/bar",access=write',
     {"signature": "abc", "repository": "foo/bar", "access": "write"}),
    ('Token signature=abc,repository="foo/bar",access=write',
     {"signature": "abc", "repository": "foo/bar", "access": "write"}),
    ('TOKEN signature=abc, repository="foo/bar" , access=read',
     {"signature": "abc", "repository": "foo/bar", "access": "read"}),
    ('Signature=abc,Access=read', {"signature": "abc", "access": "read"}),   # keys case-insensitive
    ('signature=abc,extra=1', {"signature": "abc", "extra": "1"}),
    ("", {}),
])
def test_parse_fields(value, expected):
    assert parse_fields(value) == expected


def test_hub_example_token_parses():
    # A real hub token seen in the wild (docker-registry#948).
    value = 'signature=d0b68cf62d0eb1cc3fc2ad42ad1a2b16111b1504,repository="library/redis",access=read'
    assert parse_fields(value)["repository"] == "library/redis"


def test_tokens_are_signed_uncompressed_and_compressed_ones_still_verify():
    """Issuing skips itsdangerous' zlib attempt; a token issued with it (older versions) still verifies."""
    from itsdangerous import URLSafeTimedSerializer

    signer = TokenSigner("k1", TTL)
    repeated = "abcabcabcabcabcabcabc" * 5  # compresses well: the old serializer would have zipped it
    token = signer.issue(f"{repeated}/app", "write", repeated)
    assert not parse_fields(token)["signature"].startswith(".")
    zipped = URLSafeTimedSerializer(["k1"], salt="docker-index.v1-token").dumps(
        {"r": f"{repeated}/app", "a": "write", "u": repeated})
    assert zipped.startswith(".")
    old_style = f'signature={zipped},repository="{repeated}/app",access=write'
    assert signer.verify(old_style) == Grant(f"{repeated}/app", "write", repeated)


def test_a_remembered_signature_is_still_checked_against_its_fields_and_age(clock):
    """Verified signatures are remembered; what is written beside them and their age are checked on every use."""
    signer = TokenSigner("k1", 60)
    token = signer.issue("alice/app", "write", "alice")
    assert signer.verify(token).access == "write"  # now remembered
    with pytest.raises(TokenError, match="does not match"):
        signer.verify(token.replace("access=write", "access=delete"))
    with pytest.raises(TokenError, match="does not match"):
        signer.verify(token.replace('repository="alice/app"', 'repository="alice/other"'))
    clock["t"] += 61
    with pytest.raises(TokenError, match="expired"):
        signer.verify(token)


def test_a_grant_issued_twice_in_one_second_is_the_same_token_and_a_new_second_signs_anew(signer, clock):
    first = signer.issue("alice/app", "read", None)
    assert signer.issue("alice/app", "read", None) == first  # what signing again would give
    assert signer.issue("alice/app", "read", "alice") != first
    assert signer.issue("alice/app", "read", None, generation="a.1") != first
    clock["t"] += 1
    later = signer.issue("alice/app", "read", None)
    assert later != first and signer.verify(later) == signer.verify(first) == Grant("alice/app", "read", None)
    clock["t"] += TTL
    with pytest.raises(TokenError, match="expired"):
        signer.verify(first)
    assert signer.verify(signer.issue("alice/app", "read", None)) == Grant("alice/app", "read", None)
