"""Schemathesis against the app in-process: no 5xx, every answer matches the OpenAPI document.

The example count per operation is small by default so ``make test`` stays fast; ``make fuzz``
(what CI runs after the tests) sets ``INDEX_FUZZ_EXAMPLES`` higher.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance, unsupported_method

from index import create_app
from tests.conftest import ADMIN, basic

pytestmark = pytest.mark.fuzz  # schemathesis / hypothesis runs (longer under make fuzz)

FUZZ_EXAMPLES = int(os.environ.get("INDEX_FUZZ_EXAMPLES", "8"))

# schemathesis's fixture-based loader does not work with this pytest, so the app under test is
# built once at import, on a data dir removed when the test process exits. The failure limit is
# off: the fuzzer sends wrong credentials on purpose.
_DATA = tempfile.TemporaryDirectory(prefix="index-fuzz-")
APP = create_app({"TESTING": True, "DATA_DIR": Path(_DATA.name) / "data", "SECRET_KEY": "fuzz",
                  "BCRYPT_ROUNDS": 4, "ADMIN_USERNAME": ADMIN[0], "ADMIN_PASSWORD": ADMIN[1],
                  "LOGIN_FAILURES_PER_MINUTE": 0})
schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", APP)
# An over-long list can also be refused for its size in bytes: 413 is a rejection too.
_negative = schema.config.checks.negative_data_rejection
_negative.expected_statuses = [*_negative.expected_statuses, "413"]

# `/v1/repositories/<repository>/images` is also `/v1/repositories/<namespace>/<repository>/` for
# DELETE (and `.../tags` for PUT): the protocol's two URL forms overlap, so a method one path does
# not declare is often another route's, never a plain 405. That check cannot apply here.
EXCLUDED_CHECKS = [unsupported_method]
# Two documented departures from what a schema can say, on the account routes only:
# - the password limit is 72 bytes of UTF-8; JSON Schema only counts characters, so a "too long"
#   generated password of 72 bytes or less is rightly accepted;
# - a taken username is the protocol's 400 "Username or email already exists", not a 409, and a
#   taken e-mail on a change is a 400 alike.
EXCLUDED_PER_OPERATION = {
    ("POST", "/v1/users"): [negative_data_rejection, positive_data_acceptance],
    ("POST", "/v1/users/"): [negative_data_rejection, positive_data_acceptance],
    ("PUT", "/v1/users/{username}/"): [negative_data_rejection, positive_data_acceptance],
    # Any string is a schema-valid token, but only a link this index signed is accepted (400).
    ("GET", "/account/activate"): [positive_data_acceptance],
    # An upload step is accepted only in its place in a push, which no schema can say: the json's
    # id must equal the URL's and its parent exist; a layer must be a gzip'd tar sent after the
    # json; checksums must match what was uploaded. Out of place, each is rightly a 400.
    ("PUT", "/v1/images/{image_id}/json"): [positive_data_acceptance],
    ("PUT", "/v1/images/{image_id}/layer"): [positive_data_acceptance],
    ("PUT", "/v1/images/{image_id}/checksum"): [positive_data_acceptance],
    # A webhook URL must also resolve, to a public address (unless INDEX_WEBHOOK_ALLOW_PRIVATE):
    # a generated https://0.com is rightly a 400.
    ("POST", "/api/v1/repository/{namespace}/{repository}/notification/"): [positive_data_acceptance],
    ("POST", "/api/v1/organization/{org}/notification/"): [positive_data_acceptance],
    ("POST", "/api/v1/user/notification/"): [positive_data_acceptance],
    # `since` must also be a real calendar time (no month 13), which a pattern cannot say.
    ("GET", "/api/v1/superuser/logs"): [positive_data_acceptance],
    ("GET", "/api/v1/repository/{namespace}/{repository}/logs"): [positive_data_acceptance],
}


def _excluded(case) -> list:
    key = (case.operation.method.upper(), case.operation.path)
    return EXCLUDED_CHECKS + EXCLUDED_PER_OPERATION.get(key, [])


def _served() -> set[tuple[str, str]]:
    served = set()
    for rule in APP.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        served.update((path, method) for method in rule.methods or ())
    return served


SERVED = _served()


def _skip_unless_served(case) -> None:
    # Registry routes are documented before the registry package is merged; fuzz what exists.
    method = case.operation.method.upper()
    if (case.operation.path, method) not in SERVED:
        pytest.skip(f"{method} {case.operation.path} is not served by this build")


@schema.parametrize()
@hypothesis_settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_anonymous_requests_conform(case):
    _skip_unless_served(case)
    case.call_and_validate(excluded_checks=_excluded(case))


@schema.parametrize()
@hypothesis_settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_admin_requests_conform(case):
    """As an admin every write route gets past authentication, so bodies reach the parsers."""
    _skip_unless_served(case)
    case.call_and_validate(headers=basic(*ADMIN), excluded_checks=_excluded(case))
