"""Schemathesis fuzzes every operation of the admin API on a running gateway against its OpenAPI
description: no 500, and every answer's status, content type and body as described."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.admin.openapi import admin_openapi
from tests.conftest import GatewayFactory, ServerThread, base_config
from tests.server.admin.test_openapi import ADMIN, ADMIN_KEY


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway(server={"admin_key": ADMIN_KEY})


# The document the gateway serves (tests/server/admin/test_openapi.py checks they are equal).
# Loaded here rather than with from_url through a fixture: schemathesis' lazy fixture loader
# needs a pytest internal (`Function._nodeid`) that pytest 9 no longer has.
schema = schemathesis.openapi.from_dict(admin_openapi(base_config()))


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_admin_api_keeps_to_its_description(case: Any, gateway: ServerThread) -> None:
    case.call_and_validate(
        base_url=gateway.url,
        headers=ADMIN,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
