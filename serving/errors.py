"""Errors a transport turns into a status: 400, 401, 404, 503 (and 500 for the rest)."""

from __future__ import annotations

MAX_MESSAGE_CHARS = 1000
"""An error's message is cut to this (with the length it had): messages quote what
the client sent (a model's or a tensor's name, an id), and a hostile client's
100,000-character name must not come back in a body, a gRPC status (whose trailers
gRPC caps: the stream is reset instead) or a log line per request."""


def bounded(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"... ({len(text)} characters)"


class ServingError(Exception):
    """A request the server refuses; `status` is the HTTP status, `grpc_code` the
    name of the matching `grpc.StatusCode`. The message is `bounded`."""

    status = 500
    grpc_code = "INTERNAL"

    def __init__(self, message: str) -> None:
        message = bounded(message)
        super().__init__(message)
        self.message = message


class InvalidInput(ServingError):
    """A client mistake: malformed JSON, a wrong tensor, a batch too big."""

    status = 400
    grpc_code = "INVALID_ARGUMENT"


class Unauthorized(ServingError):
    status = 401
    grpc_code = "UNAUTHENTICATED"


class ModelNotFound(ServingError):
    status = 404
    grpc_code = "NOT_FOUND"


class NotReady(ServingError):
    status = 503
    grpc_code = "UNAVAILABLE"


class ModelLoadError(RuntimeError):
    """The model at `--model_dir` cannot be found, downloaded or opened."""
