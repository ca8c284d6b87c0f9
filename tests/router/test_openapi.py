"""The OpenAPI document describes the bodies the routes read themselves."""

from __future__ import annotations

import json

from router.config import build_config
from router.http.anthropic.requests import IGNORED, TRANSLATED
from router.http.openapi import chat_completions_body, messages_body, tenant_body
from router.http.server import create_app
from router.proxy import Router
from router.requests import KNOWN


def test_every_route_that_reads_a_body_publishes_its_schema():
    app = create_app(Router(config=build_config({})), load_classifier=False, admin_key="sk-admin-0")
    paths = app.openapi()["paths"]
    for method, path in [("post", "/v1/chat/completions"), ("post", "/v1/route"),
                         ("post", "/v1/messages"), ("post", "/v1/tenants"),
                         ("patch", "/v1/tenants/{name}")]:  # fmt: skip
        body = paths[path][method]["requestBody"]
        schema = body["content"]["application/json"]["schema"]
        assert body["required"] and schema["type"] == "object", (method, path)
        assert "$ref" not in json.dumps(schema)  # self-contained: nothing to resolve


def test_the_schemas_name_exactly_the_fields_the_parsers_accept():
    assert set(chat_completions_body([])["properties"]) == KNOWN
    assert set(messages_body([])["properties"]) == TRANSLATED | IGNORED
    created, patched = tenant_body(partial=False), tenant_body(partial=True)
    assert created["required"] == ["name"] and "required" not in patched
    assert "name" not in patched["properties"]
    for schema in (created, patched):  # keys are issued, never set in a policy
        assert not {"api_keys", "api_key_hashes"} & set(schema["properties"])
