"""Pure parsing and validation of what clients send: names, ids, e-mails, image lists.

Every check is a full match (``re.fullmatch``), so a trailing newline or a ``..`` never slips by.
Nothing here knows about Flask; failures raise :class:`ValidationError` (answered as 400).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

USERNAME_RE = re.compile(r"[a-z0-9_]{4,30}")
# docker 1.5 allows hyphens inside namespaces (not leading, trailing or doubled); older clients
# only [a-z0-9_]. Namespaces end up as file names, so this pattern is also a path guard.
NAMESPACE_RE = re.compile(r"(?!-)(?!.*--)[a-z0-9_-]{2,30}(?<!-)")
REPOSITORY_RE = re.compile(r"[a-z0-9_.-]{1,128}")
IMAGE_ID_RE = re.compile(r"[a-f0-9]{64}")
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# "tarsum+sha256:" (docker 0.7), versioned "tarsum.v1+sha256:" / "tarsum.dev+sha256:", "sha256:".
CHECKSUM_RE = re.compile(r"[a-z0-9]+(?:\.[a-z0-9]+)?(?:\+[a-z0-9]+)?:[a-f0-9]{32,128}")
# An address as mail servers take it (RFC 5321/5322 dot-atom, with RFC 6531's non-ASCII letters):
# the local part is atoms of letters, digits and !#$%&'*+/=?^_`{|}~- joined by single dots; the
# domain is two or more labels of letters, digits and inner hyphens. No quoting, comments, <>,
# ":" or IP literals: the address goes into SMTP commands and mails, where those could smuggle text.
_EMAIL_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_EMAIL_LABEL = r"[^\W_](?:(?:[^\W_]|-){0,61}[^\W_])?"
EMAIL_RE = re.compile(rf"{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*@{_EMAIL_LABEL}(?:\.{_EMAIL_LABEL})+")

LIBRARY = "library"
MIN_PASSWORD_CHARS = 5
MAX_PASSWORD_BYTES = 72  # bcrypt ignores everything after 72 bytes
MAX_EMAIL_CHARS = 254
MAX_IMAGES_PER_LIST = 20_000


class ValidationError(ValueError):
    """Input that does not fit; the message says which field and why."""


@dataclass(frozen=True)
class RepoName:
    namespace: str
    repository: str

    @property
    def full(self) -> str:
        """``namespace/repository``, the form tokens and registries use."""
        return f"{self.namespace}/{self.repository}"

    @property
    def display(self) -> str:
        """The name people type: library repositories without ``library/``."""
        return self.repository if self.namespace == LIBRARY else self.full


def _check(pattern: re.Pattern[str], value: Any, field: str, rule: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string")
    if not pattern.fullmatch(value):
        raise ValidationError(f"invalid {field} {value[:80]!r}: {rule}")
    return value


def username(value: Any) -> str:
    _check(USERNAME_RE, value, "username", "4 to 30 characters of a-z, 0-9 and _")
    if value == LIBRARY:
        # A user's namespace is their name, and "library" is the admins' namespace.
        raise ValidationError("username 'library' is reserved for the admin-only library namespace")
    return value


def repo_name(namespace: Any, repository: Any) -> RepoName:
    """Validate both parts of a repository name from a URL."""
    _check(NAMESPACE_RE, namespace, "namespace",
           "2 to 30 characters of a-z, 0-9, _ and - (no leading, trailing or double -)")
    _check(REPOSITORY_RE, repository, "repository name", "1 to 128 characters of a-z, 0-9, _, . and -")
    if ".." in repository:
        # Registries may turn names into paths; ".", ".." and "a..b" are never worth the risk.
        raise ValidationError(f"invalid repository name {repository!r}: must not contain '..'")
    if repository == ".":
        raise ValidationError(f"invalid repository name {repository!r}")
    return RepoName(namespace, repository)


def image_id(value: Any) -> str:
    return _check(IMAGE_ID_RE, value, "image id", "64 lower-case hexadecimal digits")


def tag(value: Any) -> str:
    return _check(TAG_RE, value, "tag", "1 to 128 characters of A-Z, a-z, 0-9, _, . and -")


def _require_unicode(value: str, field: str) -> None:
    """JSON's "\\ud800" decodes to a lone surrogate, which cannot be encoded (or hashed) as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{field} is not valid Unicode text (unpaired surrogate)") from None


def password(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError("password must be a string")
    _require_unicode(value, "password")
    if len(value) < MIN_PASSWORD_CHARS:
        raise ValidationError(f"password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(value.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise ValidationError(f"password must be at most {MAX_PASSWORD_BYTES} bytes")
    if "\x00" in value:
        raise ValidationError("password must not contain NUL characters")
    return value


def email(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError("email is required: a valid e-mail address")
    _require_unicode(value, "email")
    if len(value) > MAX_EMAIL_CHARS or not EMAIL_RE.fullmatch(value) or _has_invisible(value):
        raise ValidationError(f"invalid email {value[:80]!r}: expected an address like name@example.com")
    return value


def _has_invisible(value: str) -> bool:
    """Control, format (bidi overrides, zero-width), surrogate, private-use or unassigned characters."""
    return any(unicodedata.category(char).startswith("C") for char in value)


def image_list(data: Any) -> list[dict[str, str]]:
    """Parse a client's image list into ``[{"id", "checksum"?, "Tag"?}]``.

    Keys are matched case-insensitively, as the Go client decodes them; unknown keys are ignored;
    an empty checksum counts as no checksum (docker 0.8-1.5 omit it).
    """
    if not isinstance(data, list):
        raise ValidationError("body must be a JSON list of images, like [{\"id\": \"<64 hex>\"}]")
    if len(data) > MAX_IMAGES_PER_LIST:
        raise ValidationError(f"too many images in one list (at most {MAX_IMAGES_PER_LIST})")
    entries = []
    for position, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValidationError(f"image {position} must be a JSON object with an \"id\"")
        fields = {str(key).lower(): value for key, value in item.items()}
        if "id" not in fields:
            raise ValidationError(f"image {position} has no \"id\"")
        entry = {"id": image_id(fields["id"])}
        checksum = fields.get("checksum")
        if checksum not in (None, ""):
            entry["checksum"] = _check(CHECKSUM_RE, checksum, f"checksum of image {position}",
                                       "expected <algorithm>:<hex>, like tarsum+sha256:<64 hex>")
        tag_value = fields.get("tag")
        if tag_value not in (None, ""):
            entry["Tag"] = tag(tag_value)
        entries.append(entry)
    return entries
