"""Hetzner's error codes and the HTTP status each one travels with.

The model raises `ApiError`; the wire layer renders it as Hetzner's error envelope. Keeping the
status table here means no handler ever picks a status by hand.
"""

from __future__ import annotations

from typing import Any

from scherbelberg.errors import EmulatorError

STATUS_BY_CODE: dict[str, int] = {
    "json_error": 400,
    "unauthorized": 401,
    "token_readonly": 401,
    "forbidden": 403,
    "maintenance": 403,
    "resource_limit_exceeded": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "uniqueness_error": 409,
    "conflict": 409,
    "deprecated_api_endpoint": 410,
    "resource_unavailable": 412,
    "invalid_input": 422,
    "service_error": 422,
    "unsupported_error": 422,
    "placement_error": 422,
    "server_not_stopped": 422,
    "invalid_server_type": 422,
    "networks_overlap": 422,
    "ip_not_available": 422,
    "no_subnet_available": 422,
    "firewall_already_applied": 422,
    "firewall_already_removed": 422,
    "firewall_managed_by_label_selector": 422,
    "resource_in_use": 422,
    "locked": 423,
    "protected": 423,
    "rate_limit_exceeded": 429,
    "server_error": 500,
    "bad_gateway": 502,
    "unavailable": 503,
    "timeout": 504,
}


class ApiError(EmulatorError):
    """An error the API answers with: a Hetzner code, a message and optional details."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details

    @property
    def status(self) -> int:
        return STATUS_BY_CODE.get(self.code, 500)

    def envelope(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def not_found(kind: str, ident: object) -> ApiError:
    return ApiError("not_found", f"{kind} with ID {ident} not found")


def invalid_input(field: str, message: str) -> ApiError:
    return ApiError(
        "invalid_input",
        f"invalid input in field '{field}'",
        {"fields": [{"name": field, "messages": [message]}]},
    )


def uniqueness_error(field: str) -> ApiError:
    return ApiError("uniqueness_error", f"{field} is already used", {"fields": [{"name": field}]})
