"""The error the simulator's layers raise; the HTTP layer renders it in Graph's error shape."""

from __future__ import annotations


class GraphError(Exception):
    """An error answer: HTTP status, Graph error code and message, optional extra headers."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None, extra: dict[str, object] | None = None
                 ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


def bad_request(code: str, message: str) -> GraphError:
    return GraphError(400, code, message)


def body_read_error(message: str) -> GraphError:
    """What Graph's OData reader answers for a request body it cannot read."""
    return GraphError(400, "RequestBodyRead", message)


def item_not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def malformed_id() -> GraphError:
    return GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
