"""Bitrix24 errors, by the `error` string of the response (never by HTTP status alone: it changed over the
years, docs: _includes/system-errors.md).

    Bitrix24Error                    (CallqaError) any error from the portal or on the way to it
    ├── AuthError                    NO_AUTH_FOUND, invalid_grant, ...: the webhook or tokens are wrong
    ├── AccessDenied                 ACCESS_DENIED, INVALID_CREDENTIALS, ...: not allowed for this item
    │   └── MissingScope             insufficient_scope: the webhook or app lacks the method's scope (crm, ...)
    ├── NotFound                     NOT_FOUND, OWNER_NOT_FOUND, ERROR_NOT_FOUND
    ├── RateLimited                  QUERY_LIMIT_EXCEEDED, OPERATION_TIME_LIMIT (after the client's retries)
    ├── TransportError               network errors, 5xx, bodies that are not JSON (after retries)
    └── AmbiguousWrite               a write was sent and no answer came: it may or may not have been applied

Messages name the method, never the webhook URL or a token.
"""

from __future__ import annotations

from pipeline.errors import CallqaError

__all__ = ["AccessDenied", "AmbiguousWrite", "AuthError", "Bitrix24Error", "MissingScope", "NotFound",
           "RateLimited", "TransportError", "error_for", "scope_of"]


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


class MissingScope(AccessDenied):
    """The webhook (or OAuth app) was created without the scope a method needs: nothing works until an admin adds
    it, so the message says which one and where, in one line."""

    exit_code = 3  # a configuration problem, like a wrong webhook

    def __init__(self, method: str, code: str = "insufficient_scope", description: str = "") -> None:
        super().__init__(method, code, description)
        self.scope = scope_of(method)
        needed = f"the `{self.scope}` scope" if self.scope else "a scope this method needs"
        self.args = (f"Bitrix24 {method}: the webhook lacks {needed}; add it to the webhook in Bitrix24 "
                     "(Developer resources) or to the app's scopes",)


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
    "ACCESS_DENIED": AccessDenied, "insufficient_scope": MissingScope, "INVALID_CREDENTIALS": AccessDenied,
    "user_access_error": AccessDenied,
    "NOT_FOUND": NotFound, "OWNER_NOT_FOUND": NotFound, "ERROR_NOT_FOUND": NotFound,
    "QUERY_LIMIT_EXCEEDED": RateLimited, "OPERATION_TIME_LIMIT": RateLimited, "OVERLOAD_LIMIT": RateLimited,
    "INTERNAL_SERVER_ERROR": TransportError, "ERROR_UNEXPECTED_ANSWER": TransportError,
}


# Method prefixes and the scope that grants them (docs: api-reference/scopes/permissions.md and each method's
# "Scope:" line); the longest matching prefix wins, so voximplant.infocall.* (scope `call`) beats voximplant.*.
_SCOPES = {
    "crm.": "crm", "voximplant.": "telephony", "voximplant.infocall.": "call", "telephony.": "telephony",
    "disk.": "disk", "user.": "user", "im.": "im", "imbot.": "imbot", "imopenlines.": "imopenlines",
    "imconnector.": "imconnector", "department.": "department", "tasks.": "task", "task.": "task",
    "calendar.": "calendar", "bizproc.": "bizproc", "entity.": "entity", "lists.": "lists", "log.": "log",
    "catalog.": "catalog", "sale.": "sale", "timeman.": "timeman", "landing.": "landing",
    "documentgenerator.": "documentgenerator", "sonet_group.": "sonet_group", "userfieldconfig.": "userfieldconfig",
}


def scope_of(method: str) -> str | None:
    """The scope a method needs, by its prefix (e.g. "crm.timeline.comment.add" -> "crm"); None if unknown."""
    lowered = method.lower()
    matches = [prefix for prefix in _SCOPES if lowered.startswith(prefix)]
    return _SCOPES[max(matches, key=len)] if matches else None


def error_for(method: str, code: str, description: str = "") -> Bitrix24Error:
    """The exception for an error string; some CRM methods answer with an empty code and a description."""
    if not code and "access denied" in description.lower():
        return AccessDenied(method, "ACCESS_DENIED", description)
    if not code and "not found" in description.lower():
        return NotFound(method, "NOT_FOUND", description)
    return _BY_CODE.get(code, Bitrix24Error)(method, code or "ERROR", description)
