"""Bitrix24 errors, by the `error` string of the response (never by HTTP status alone: it changed over the
years, docs: _includes/system-errors.md).

    Bitrix24Error                    (CallqaError) any error from the portal or on the way to it
    ├── AuthError                    NO_AUTH_FOUND, invalid_grant, ...: the webhook or tokens are wrong
    ├── AccessDenied                 ACCESS_DENIED, insufficient_scope, ...: not allowed for this item
    ├── NotFound                     NOT_FOUND, OWNER_NOT_FOUND, ERROR_NOT_FOUND
    ├── RateLimited                  QUERY_LIMIT_EXCEEDED, OPERATION_TIME_LIMIT (after the client's retries)
    ├── TransportError               network errors, 5xx, bodies that are not JSON (after retries)
    └── AmbiguousWrite               a write was sent and no answer came: it may or may not have been applied

Messages name the method, never the webhook URL or a token.
"""

from __future__ import annotations

from pipeline.errors import CallqaError

__all__ = ["AccessDenied", "AmbiguousWrite", "AuthError", "Bitrix24Error", "NotFound", "RateLimited",
           "TransportError", "error_for"]


class Bitrix24Error(CallqaError):
    exit_code = 1

    def __init__(self, method: str, code: str, description: str = "") -> None:
        self.method, self.code, self.description = method, code, description
        super().__init__(f"Bitrix24 {method}: {code}" + (f" ({description})" if description else ""))

    def __reduce__(self):  # picklable across Dask workers
        return (type(self), (self.method, self.code, self.description))


class AuthError(Bitrix24Error):
    exit_code = 3


class AccessDenied(Bitrix24Error):
    pass


class NotFound(Bitrix24Error):
    pass


class RateLimited(Bitrix24Error):
    pass


class TransportError(Bitrix24Error):
    pass


class AmbiguousWrite(Bitrix24Error):
    pass


_BY_CODE = {
    "NO_AUTH_FOUND": AuthError, "invalid_token": AuthError, "invalid_grant": AuthError, "invalid_client": AuthError,
    "WRONG_AUTH_TYPE": AuthError, "expired_token": AuthError, "PORTAL_DELETED": AuthError,
    "ACCESS_DENIED": AccessDenied, "insufficient_scope": AccessDenied, "INVALID_CREDENTIALS": AccessDenied,
    "user_access_error": AccessDenied,
    "NOT_FOUND": NotFound, "OWNER_NOT_FOUND": NotFound, "ERROR_NOT_FOUND": NotFound,
    "QUERY_LIMIT_EXCEEDED": RateLimited, "OPERATION_TIME_LIMIT": RateLimited, "OVERLOAD_LIMIT": RateLimited,
    "INTERNAL_SERVER_ERROR": TransportError, "ERROR_UNEXPECTED_ANSWER": TransportError,
}


def error_for(method: str, code: str, description: str = "") -> Bitrix24Error:
    """The exception for an error string; some CRM methods answer with an empty code and a description."""
    if not code and "access denied" in description.lower():
        return AccessDenied(method, "ACCESS_DENIED", description)
    if not code and "not found" in description.lower():
        return NotFound(method, "NOT_FOUND", description)
    return _BY_CODE.get(code, Bitrix24Error)(method, code or "ERROR", description)
