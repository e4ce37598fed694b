"""The HTTP edge of both servers: token rules, the bearer check, the 500 reply (a request id and
nothing of the exception), the OpenAPI trim and the security headers, on small test apps built
with the edge's installers (in process, through httpx's ASGI transport)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp

from dataset_worker.api.errors import install_error_handlers as install_api_handlers
from dataset_worker.httpedge.auth import (
    MIN_TOKEN_LENGTH,
    BearerAuthMiddleware,
    TokenError,
    check_token,
    token_matches,
)
from dataset_worker.httpedge.errors import REQUEST_ID_HEADER, install_error_handlers
from dataset_worker.httpedge.headers import (
    PAGE_POLICY,
    SecurityHeadersMiddleware,
    page_policy,
)
from dataset_worker.httpedge.openapi import install_openapi
from dataset_worker.provider.app import _install_error_handlers as install_provider_handlers

SECRET = "password=hunter2 at /srv/private/path"
TOKEN = "a-long-enough-token-0123"


def get(app: ASGIApp, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(fetch())


def failing_app(install: Callable[[FastAPI], None]) -> FastAPI:
    app = FastAPI()
    install(app)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(SECRET)

    @app.get("/count")
    def count(n: int) -> int:
        return n

    return app


INSTALLERS: dict[str, Callable[[FastAPI], None]] = {
    "edge": lambda app: install_error_handlers(app, service="test"),
    "api": install_api_handlers,
    "provider": install_provider_handlers,
}


@pytest.mark.parametrize("server", INSTALLERS)
def test_a_500_carries_only_a_request_id_and_the_log_has_the_exception(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = failing_app(INSTALLERS[server])
    with caplog.at_level(logging.ERROR):
        reply = get(app, "/boom")
    assert reply.status_code == 500
    request_id = reply.headers[REQUEST_ID_HEADER]
    assert len(request_id) == 16 and int(request_id, 16) >= 0
    body = reply.json()
    assert body == {
        "error": f"Internal error: the server logged it under request id {request_id}",
        "detail": None,
        "requestId": request_id,
    }
    assert "hunter2" not in reply.text and "RuntimeError" not in reply.text
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == request_id]
    assert len(logged) == 1
    assert logged[0].__dict__["error"] == f"RuntimeError: {SECRET}"
    assert logged[0].__dict__["path"] == "/boom"


def test_the_admin_servers_500_carries_the_security_headers() -> None:
    # Starlette sends a 500 from outside the app's middleware: the handler adds them itself.
    reply = get(failing_app(INSTALLERS["api"]), "/boom")
    assert reply.status_code == 500
    assert reply.headers["content-security-policy"] == PAGE_POLICY
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "no-referrer"


def test_each_500_gets_its_own_request_id() -> None:
    app = failing_app(INSTALLERS["edge"])
    ids = {get(app, "/boom").headers[REQUEST_ID_HEADER] for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize("server", INSTALLERS)
def test_validation_errors_are_400_with_the_field(server: str) -> None:
    reply = get(failing_app(INSTALLERS[server]), "/count?n=many")
    assert reply.status_code == 400
    body = reply.json()
    assert body["error"] == "query parameter n must be an integer"
    assert body["errors"] == [{"field": "n", "message": "query parameter n must be an integer"}]


def test_the_openapi_document_lists_no_422() -> None:
    app = failing_app(INSTALLERS["edge"])
    install_openapi(app)
    document = app.openapi()
    codes = {code for op in document["paths"]["/count"].values() for code in op["responses"]}
    assert "422" not in codes and "200" in codes
    assert "HTTPValidationError" not in document.get("components", {}).get("schemas", {})


@pytest.mark.parametrize(
    ("token", "rule"),
    [
        ("x", "is too short: 1 characters"),
        ("x" * (MIN_TOKEN_LENGTH - 1), f"is too short: {MIN_TOKEN_LENGTH - 1} characters"),
        ("two words but long enough", "must be one word of printable characters"),
        ("tab\there-0123456789", "must be one word of printable characters"),
    ],
)
def test_token_rules(token: str, rule: str) -> None:
    with pytest.raises(TokenError) as raised:
        check_token(token, "SOME_VARIABLE")
    assert str(raised.value).startswith("the token in SOME_VARIABLE ")
    assert rule in str(raised.value)
    assert check_token("y" * MIN_TOKEN_LENGTH, "SOME_VARIABLE") == "y" * MIN_TOKEN_LENGTH


def test_the_bearer_check_refuses_to_start_with_a_short_token() -> None:
    with pytest.raises(TokenError, match="too short"):
        BearerAuthMiddleware(FastAPI(), token="short", protected=lambda _path: True)


def test_the_bearer_check() -> None:
    assert token_matches(f"Bearer {TOKEN}".encode(), TOKEN)
    assert token_matches(f"bearer  {TOKEN} ".encode(), TOKEN)
    assert not token_matches(f"Basic {TOKEN}".encode(), TOKEN)
    assert not token_matches(f"Bearer {TOKEN}x".encode(), TOKEN)
    assert not token_matches(None, TOKEN)
    app = BearerAuthMiddleware(
        failing_app(INSTALLERS["edge"]), token=TOKEN, protected=lambda p: p != "/open", name="key"
    )
    missing = get(app, "/count?n=1")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"] == "Missing key: send the header Authorization: Bearer <token>"
    wrong = get(app, "/count?n=1", {"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "Invalid key"
    assert get(app, "/count?n=1", {"Authorization": f"Bearer {TOKEN}"}).json() == 1
    assert get(app, "/open").status_code == 404  # not protected: reaches the app


def test_security_headers_are_added_unless_the_reply_sets_its_own() -> None:
    inner = failing_app(INSTALLERS["edge"])

    @inner.get("/own")
    def own() -> Response:
        return Response(b"x", headers={"Content-Security-Policy": "sandbox"})

    app = SecurityHeadersMiddleware(inner, policy_of=page_policy)
    reply = get(app, "/count?n=1")
    assert reply.headers["content-security-policy"] == PAGE_POLICY
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "no-referrer"
    docs = get(app, "/docs")
    assert "default-src" not in docs.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
    own_reply = get(app, "/own")
    assert own_reply.headers.get_list("content-security-policy") == ["sandbox"]
    assert own_reply.headers["x-content-type-options"] == "nosniff"
