"""The admin API's OpenAPI description as a document: valid OpenAPI 3.1, and every admin route in it."""

from __future__ import annotations

import jsonschema
import schemathesis

from gateway.admin.openapi import admin_openapi
from tests.conftest import base_config


def test_the_description_is_valid_openapi_3_1() -> None:
    for spec in [admin_openapi(), admin_openapi(base_config())]:
        assert spec["openapi"] == "3.1.0"
        schemathesis.openapi.from_dict(spec)  # refuses a malformed description
        # Every schema is valid JSON Schema 2020-12 (what OpenAPI 3.1 uses).
        for schema in spec["components"]["schemas"].values():
            jsonschema.Draft202012Validator.check_schema(schema)
    # The config's choices are added to copies: the plain description stays plain.
    assert (
        "enum" not in admin_openapi()["components"]["schemas"]["TeamCreate"]["properties"]["tier"]
    )


def test_every_admin_route_is_described() -> None:
    from gateway.admin.api import admin_routes

    (mount,) = admin_routes()
    router = mount.app.app  # type: ignore[attr-defined]  # the Router inside AdminGuard
    described = {
        (path, method.upper())
        for path, item in admin_openapi()["paths"].items()
        for method in item
        if method != "parameters"
    }
    routed = {
        (f"/admin{route.path}", method)
        for route in router.routes
        for method in route.methods - {"HEAD"}
    }
    assert described == routed
