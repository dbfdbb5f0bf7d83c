"""The aiohttp application: Hetzner's wire conventions around the resource handlers.

Middlewares, outermost first: correlation id + request log + error envelope, then bearer-token
auth (one project per token), the rate limit, injected faults and the latency profile.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..faults import NO_ANSWER, SLOW
from ..model.errors import ApiError
from ..model.world import World
from . import action_routes, admin, catalog_routes, resource_routes, server_routes
from .app_state import (
    ADMIN_TOKEN,
    NO_ANSWER_KEY,
    RATE_LIMITERS,
    REQUEST_LOG,
    RequestLog,
    RequestRecord,
    bearer,
)
from .common import PROJECT_KEY, WORLD
from .listing import InvalidInput
from .ratelimit import RateLimiter

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_PREFIX = "/v1"


def _error(exc: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(exc.envelope(), status=exc.status, headers=headers)


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Correlation id, error envelope and request log for everything under /v1."""
    if not request.path.startswith(API_PREFIX + "/") and request.path != API_PREFIX:
        return await handler(request)
    correlation = uuid.uuid4().hex[:16]
    started = time.time()
    try:
        response = await handler(request)
    except ApiError as exc:
        response = _error(exc, request.get("ratelimit_headers"))
    except InvalidInput as exc:
        response = _error(
            ApiError(
                "invalid_input",
                f"invalid input in field '{exc.field}'",
                {"fields": [{"name": exc.field, "messages": [exc.message]}]},
            ),
            request.get("ratelimit_headers"),
        )
    except web.HTTPMethodNotAllowed:
        response = _error(ApiError("method_not_allowed", f"{request.method} is not allowed here"))
    except web.HTTPNotFound:
        response = _error(ApiError("not_found", f"{request.path} not found"))
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        response = _error(ApiError("server_error", "internal error in the local Hetzner"))
    response.headers["X-Correlation-Id"] = correlation
    project = request.get(PROJECT_KEY)
    status = NO_ANSWER if request.get(NO_ANSWER_KEY) else response.status
    request.app[REQUEST_LOG].add(
        RequestRecord(
            time=started,
            method=request.method,
            path=request.path[len(API_PREFIX) :] or "/",
            query=request.query_string,
            token=bearer(request),
            project_id=getattr(project, "id", None),
            status=status,
            user_agent=request.headers.get("User-Agent", ""),
        )
    )
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(API_PREFIX + "/"):
        return await handler(request)
    token = bearer(request)
    project = request.app[WORLD].project_for(token) if token else None
    if project is None:
        raise ApiError("unauthorized", "unable to authenticate")
    request[PROJECT_KEY] = project
    limiter = request.app[RATE_LIMITERS].setdefault(
        project.id, RateLimiter(limit=project.requests_per_hour)
    )
    allowed = limiter.take()
    headers = limiter.headers()
    request["ratelimit_headers"] = headers
    if not allowed:
        raise ApiError(
            "rate_limit_exceeded",
            f"limit of {project.requests_per_hour} requests per hour reached",
        )
    world = request.app[WORLD]
    fault = world.faults.http_fault_for(request.method, request.path[len(API_PREFIX) :])
    if fault is not None:
        if fault.delay > 0:
            await asyncio.sleep(fault.delay)
        if fault.status == NO_ANSWER:
            return _no_answer(request)
        if fault.status != SLOW:
            raise ApiError(fault.code, f"injected fault: {fault.code}")
    if world.latency.api_request > 0:
        await asyncio.sleep(world.latency.api_request)
    response = await handler(request)
    response.headers.update(headers)
    return response


def _no_answer(request: web.Request) -> web.Response:
    """A request that times out: the connection closes and nothing is sent back (aiohttp
    drops the response quietly); the request log records status 0."""
    request[NO_ANSWER_KEY] = True
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=504)


def make_app(world: World, admin_token: str) -> web.Application:
    app = web.Application(middlewares=[envelope_middleware, auth_middleware])
    app[WORLD] = world
    app[REQUEST_LOG] = RequestLog()
    app[RATE_LIMITERS] = {}
    app[ADMIN_TOKEN] = admin_token
    # actions first: /servers/actions must not be taken by /servers/{id}
    for table in (
        action_routes.routes,
        server_routes.routes,
        resource_routes.routes,
        catalog_routes.routes,
    ):
        for route in table:
            assert isinstance(route, web.RouteDef)
            app.router.add_route(route.method, API_PREFIX + route.path, route.handler)
    app.add_routes(admin.routes)
    return app
