"""The sandbox's ASGI application (Starlette): ``POST /gateway`` through the fault knobs, ``GET /sandbox/<view>``.

The business handlers and views register themselves when their modules are imported: :data:`HANDLER_MODULES`
names them all, and :func:`load_handlers` imports each (a missing one is an error, not a quietly smaller API).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..gateway import ERROR_RESPONSE_KEY, GATEWAY_PATH, MAX_BODY, Code, SubCode
from .auth import invalid, parse_form
from .database import Database
from .dispatch import UNKNOWN_ERROR, Gateway, reply_key
from .faults import FaultPlan
from .registry import INSPECTIONS, Refused

LOG = logging.getLogger(__name__)

HANDLER_MODULES = ("devices", "views", "payments", "subsidy")
"""The modules of :mod:`enrollment.sandbox` whose handlers (``registry.handles``) and views (``inspects``) it serves."""
REPLY_TYPE = "application/json; charset=utf-8"
TRANSPORT = "naiad.transport"
"""Scope key of the connection's transport, so a dropped reply can close the connection with nothing sent."""
RETRY_AFTER_SECONDS = 1
DROP_WAIT_SECONDS = 5.0
"""How long a dropped reply waits for the server to see the disconnect (then it ends all the same)."""
RATE_LIMITED = Refused(SubCode.RATE_LIMITED, "too many requests for this app; try again later", Code.UNAVAILABLE)
BUSY = Refused(SubCode.UNKNOWN_ERROR, "the platform is busy; try again later", Code.UNAVAILABLE)


def load_handlers() -> None:
    for name in HANDLER_MODULES:
        importlib.import_module(f"{__package__}.{name}")


def build_app(gateway: Gateway, plan: FaultPlan, database: Database) -> ASGIApp:
    """The application serving ``gateway`` through the faults ``plan`` draws, and the views over ``database``."""

    async def post_gateway(request: Request) -> Response:
        key, form = ERROR_RESPONSE_KEY, {}
        try:
            body = await _body(request)
            form = parse_form(body, request.headers.get("content-type", ""))
            key = reply_key(form)
            caller = await run_in_threadpool(gateway.authenticate, form)  # the limit counts only real apps
            if plan.limited(caller.app_id):
                reply = await run_in_threadpool(gateway.refused, form, RATE_LIMITED)
                return _reply(reply, 429, {"Retry-After": str(RETRY_AFTER_SECONDS)})
            draw = plan.draw()
            if draw.delay:
                await asyncio.sleep(draw.delay)
            if draw.error:
                return _reply(await run_in_threadpool(gateway.refused, form, BUSY), 503)
            reply = await run_in_threadpool(gateway.answer, form, caller)
            return DroppedReply() if draw.drop else _reply(reply)
        except asyncio.CancelledError:  # the server stops with this request under way: reset, stay cancelled
            _abort(request.scope)
            raise
        except Refused as refusal:
            return _reply(await run_in_threadpool(gateway.refused, form, refusal))
        except Exception:
            LOG.exception("sandbox gateway: the request failed")
            return _reply(await run_in_threadpool(gateway.refusal, key, UNKNOWN_ERROR))

    async def get_view(request: Request) -> Response:
        view = INSPECTIONS.get(request.path_params["name"])
        if view is None:
            return JSONResponse({"error": "no such view", "views": sorted(INSPECTIONS)}, 404)

        def read() -> list[dict[str, Any]]:
            with database.read() as session:
                return view(session)

        return JSONResponse(await run_in_threadpool(read))

    app = Starlette(
        routes=[
            Route(GATEWAY_PATH, post_gateway, methods=["POST"]),
            Route("/sandbox/{name}", get_view, methods=["GET"]),
        ]
    )
    return _with_transport(app)


async def _body(request: Request) -> bytes:
    """The request body, refused past MAX_BODY (also when a Content-Length says so, before reading it)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise invalid(SubCode.INVALID_PARAMETER, "the request is larger than 1 MiB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise invalid(SubCode.INVALID_PARAMETER, "the request is larger than 1 MiB")
    return bytes(body)


def _reply(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status, headers, media_type=REPLY_TYPE)


class DroppedReply(Response):
    """No reply at all: the connection is reset after the work was committed, as a network failure would (also
    for a request under way when the server stops)."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _abort(scope):  # another server than uvicorn: promise a body and end without it
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]})
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                receive(), timeout=DROP_WAIT_SECONDS
            )  # the disconnect: the server then sends nothing more


def _abort(scope: Scope) -> bool:
    """Reset the connection of ``scope``: nothing at all is sent, not even a TLS close (False: no transport)."""
    transport = scope.get(TRANSPORT)
    if transport is None:
        return False
    transport.abort()
    return True


def _with_transport(app: ASGIApp) -> ASGIApp:
    """Put the connection's transport in each HTTP scope (uvicorn's ``send`` is bound to its request cycle)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[TRANSPORT] = getattr(getattr(send, "__self__", None), "transport", None)
        await app(scope, receive, send)

    return wrapped
