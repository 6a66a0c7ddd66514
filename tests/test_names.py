"""index/names.py: every accepted and refused value as a parametrize row."""
from __future__ import annotations

import pytest

from index import names
from index.names import RepoName, ValidationError

HEX64 = "a" * 64


@pytest.mark.parametrize("value", ["alice", "abcd", "a" * 30, "user_1", "0000", "___a"])
def test_username_accepted(value):
    assert names.username(value) == value


@pytest.mark.parametrize("value", [
    "abc",               # too short (docs: 4-30)
    "a" * 31,            # too long
    "Alice",             # upper case
    "al-ice",            # hyphen: not in [a-z0-9_]
    "al.ice",
    "alice\n",           # a trailing newline must not slip through ($ would allow it)
    "\nalice",
    "ali ce",
    "alice\x00",
    "älice",
    "",
    "../etc",
])
def test_username_refused(value):
    with pytest.raises(ValidationError, match="username"):
        names.username(value)


@pytest.mark.parametrize("value", [None, 1234, 12.5, True, ["alice"], {"a": 1}])
def test_username_wrong_type(value):
    with pytest.raises(ValidationError, match="username must be a string"):
        names.username(value)


@pytest.mark.parametrize("namespace,repository", [
    ("alice", "app"),
    ("library", "busybox"),
    ("my-team", "web.app"),      # docker 1.5: hyphens inside namespaces
    ("ab", "x"),
    ("alice", "a_b-c.d"),
    ("alice", "a" * 128),
    ("alice", ".hidden"),
])
def test_repo_name_accepted(namespace, repository):
    name = names.repo_name(namespace, repository)
    assert name == RepoName(namespace, repository)
    assert name.full == f"{namespace}/{repository}"


@pytest.mark.parametrize("namespace,repository,field", [
    ("alice", "..", "repository"),
    ("alice", ".", "repository"),
    ("alice", "a..b", "repository"),        # '..' anywhere is refused (issue 2, "Errors")
    ("alice", "..app", "repository"),
    ("alice", "app..", "repository"),
    ("alice", "app\n", "repository"),
    ("alice", "App", "repository"),
    ("alice", "a/b", "repository"),
    ("alice", "", "repository"),
    ("alice", "a" * 129, "repository"),
    ("alice", "app\x00", "repository"),
    ("alice", "app ", "repository"),
    ("..", "app", "namespace"),
    ("a", "app", "namespace"),              # too short
    ("a" * 31, "app", "namespace"),
    ("-alice", "app", "namespace"),
    ("alice-", "app", "namespace"),
    ("al--ice", "app", "namespace"),
    ("alice\n", "app", "namespace"),
    ("Alice", "app", "namespace"),
    ("al.ice", "app", "namespace"),
    ("al/ice", "app", "namespace"),
])
def test_repo_name_refused(namespace, repository, field):
    with pytest.raises(ValidationError, match=field):
        names.repo_name(namespace, repository)


@pytest.mark.parametrize("namespace,repository", [(None, "app"), ("alice", 5), ("alice", None)])
def test_repo_name_wrong_type(namespace, repository):
    with pytest.raises(ValidationError, match="must be a string"):
        names.repo_name(namespace, repository)


def test_library_display_drops_the_namespace():
    assert RepoName("library", "busybox").display == "busybox"
    assert RepoName("library", "busybox").full == "library/busybox"
    assert RepoName("alice", "app").display == "alice/app"


@pytest.mark.parametrize("value", [HEX64, "0123456789abcdef" * 4])
def test_image_id_accepted(value):
    assert names.image_id(value) == value


@pytest.mark.parametrize("value", [
    "a" * 63, "a" * 65, "A" * 64, "g" * 64, HEX64 + "\n", " " + HEX64, "", "../" + "a" * 61,
])
def test_image_id_refused(value):
    with pytest.raises(ValidationError, match="image id"):
        names.image_id(value)


@pytest.mark.parametrize("value", ["latest", "v1.0", "1", "A_b-c.d", "x" * 128])
def test_tag_accepted(value):
    assert names.tag(value) == value


@pytest.mark.parametrize("value", ["", ".hidden", "-x", "a b", "latest\n", "x" * 129, "a/b", "a:b"])
def test_tag_refused(value):
    with pytest.raises(ValidationError, match="tag"):
        names.tag(value)


@pytest.mark.parametrize("value", ["12345", "x" * 72, "é" * 36, "pass word", "пароль!"])
def test_password_accepted(value):
    assert names.password(value) == value


@pytest.mark.parametrize("value,message", [
    ("1234", "at least 5 characters"),
    ("", "at least 5 characters"),
    ("x" * 73, "at most 72 bytes"),
    ("é" * 37, "at most 72 bytes"),          # 37 characters but 74 bytes: bcrypt counts bytes
    ("abc\x00def", "NUL"),
    ("abc\ud800def", "not valid Unicode"),   # a lone surrogate from "\ud800" in JSON
    (None, "must be a string"),
    (12345, "must be a string"),
    (["secret"], "must be a string"),
])
def test_password_refused(value, message):
    with pytest.raises(ValidationError, match=message):
        names.password(value)


@pytest.mark.parametrize("value", ["sam@dotcloud.com", "a.b+c@sub.example.org", "x@y.io"])
def test_email_accepted(value):
    assert names.email(value) == value


@pytest.mark.parametrize("value", [
    "", "plain", "@example.com", "a@", "a@b", "a@@b.com", "a b@c.com", "a@b.com\n",
    "a\x00@b.com", "a@b..com", "a@.com", "x" * 250 + "@b.com", "a\ud800@b.com", None, 5, ["a@b.com"],
])
def test_email_refused(value):
    with pytest.raises(ValidationError, match="email"):
        names.email(value)


def test_image_list_docker_18_to_15_shape():
    body = [{"id": "1" * 64}, {"id": "2" * 64}, {"id": "3" * 64, "Tag": "latest"}]
    assert names.image_list(body) == body


def test_image_list_keys_are_case_insensitive_and_unknown_keys_ignored():
    body = [{"ID": HEX64, "Checksum": "tarsum+sha256:" + "b" * 64, "tag": "v1", "extra": [[[1]]]}]
    assert names.image_list(body) == [{"id": HEX64, "checksum": "tarsum+sha256:" + "b" * 64, "Tag": "v1"}]


@pytest.mark.parametrize("checksum", [
    "tarsum+sha256:" + "b" * 64,          # docker 0.7
    "sha256:" + "b" * 64,
    "tarsum.v1+sha256:" + "b" * 64,       # versioned tarsum (docker 1.0+ layers)
    "tarsum.dev+sha256:" + "b" * 64,
])
def test_image_list_checksum_forms_accepted(checksum):
    assert names.image_list([{"id": HEX64, "checksum": checksum}])[0]["checksum"] == checksum


@pytest.mark.parametrize("entry", [{"id": HEX64, "checksum": ""}, {"id": HEX64, "checksum": None},
                                   {"id": HEX64, "Tag": ""}, {"id": HEX64, "Tag": None}])
def test_image_list_empty_optional_fields_are_dropped(entry):
    assert names.image_list([entry]) == [{"id": HEX64}]


def test_image_list_empty_is_fine():
    assert names.image_list([]) == []


@pytest.mark.parametrize("body,message", [
    ({"id": HEX64}, "JSON list"),
    ("x", "JSON list"),
    (None, "JSON list"),
    (5, "JSON list"),
    ([HEX64], "image 0 must be a JSON object"),
    ([None], "image 0 must be a JSON object"),
    ([[{"id": HEX64}]], "image 0 must be a JSON object"),
    ([{}], "image 0 has no \"id\""),
    ([{"Tag": "latest"}], "image 0 has no \"id\""),
    ([{"id": HEX64}, {"id": "short"}], "image id"),
    ([{"id": 5}], "image id must be a string"),
    ([{"id": None}], "image id must be a string"),
    ([{"id": HEX64, "checksum": 5}], "checksum of image 0 must be a string"),
    ([{"id": HEX64, "checksum": "nocolon"}], "checksum of image 0"),
    ([{"id": HEX64, "checksum": "sha256:xyz"}], "checksum of image 0"),
    ([{"id": HEX64, "Tag": 5}], "tag must be a string"),
    ([{"id": HEX64, "Tag": "bad tag"}], "tag"),
    ([{"id": HEX64, "Tag": ["latest"]}], "tag must be a string"),
])
def test_image_list_refused(body, message):
    with pytest.raises(ValidationError, match=message):
        names.image_list(body)


def test_image_list_too_long():
    with pytest.raises(ValidationError, match="too many images"):
        names.image_list([{"id": HEX64}] * (names.MAX_IMAGES_PER_LIST + 1))
