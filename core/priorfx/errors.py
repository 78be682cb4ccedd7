"""One exception family for the whole core.

Each error knows its CLI exit code and its HTTP status, and carries a `hint`
that tells the user what to do. Hosts show `str(err)`, which includes the hint.
The server sends `to_json()`; RemoteEngine turns that JSON back into the same
class with `from_json()`, so local and remote runs fail the same way.
"""
from __future__ import annotations


class PriorfxError(Exception):
    """Base class. Subclasses set `code` (stable id), `exit_code`, `http_status`."""

    code = "error"
    exit_code = 1
    http_status = 500

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_json(self) -> dict:
        return {"error": self.code, "message": self.message, "hint": self.hint}

    @staticmethod
    def from_json(body: dict) -> "PriorfxError":
        cls = _BY_CODE.get(body.get("error", ""), PriorfxError)
        return cls(body.get("message", "unknown error"), body.get("hint"))


class UsageError(PriorfxError):
    """Bad parameters or command line."""
    code, exit_code, http_status = "usage", 2, 400


class InputError(PriorfxError):
    """Missing, unreadable, corrupt or unsupported input (file, frame, buffer)."""
    code, exit_code, http_status = "input", 3, 422


class ModelMissingError(PriorfxError):
    """A model is not in the store; the hint names `priorfx models fetch ID`."""
    code, exit_code, http_status = "model_missing", 4, 503


class ModelChecksumError(PriorfxError):
    """A model file does not match its recorded sha256 and is refused."""
    code, exit_code, http_status = "model_checksum", 5, 503


class NoFaceError(PriorfxError):
    """The portrait manipulation found no face."""
    code, exit_code, http_status = "no_face", 6, 422


class EngineUnreachableError(PriorfxError):
    """The remote server (or the package index) cannot be reached."""
    code, exit_code, http_status = "unreachable", 7, 502


class AuthError(PriorfxError):
    """Missing or wrong token for a priorfx server."""
    code, exit_code, http_status = "auth", 8, 401


class ForbiddenError(AuthError):
    """A request the server refuses whoever sends it: a foreign Host or Origin (DNS rebinding, a web page)."""
    code, http_status = "forbidden", 403


class LimitError(PriorfxError):
    """Input over a configured limit (image size, body size, frame count)."""
    code, exit_code, http_status = "limit", 9, 413


class VersionMismatchError(PriorfxError):
    """Client and server speak different protocol versions."""
    code, exit_code, http_status = "version", 10, 409


class OutputError(PriorfxError):
    """The output cannot be written (folder missing, no permission, disk full)."""
    code, exit_code, http_status = "output", 11, 500


class UnsupportedMediaError(UsageError):
    """A POST whose Content-Type is not the priorfx bundle type (a web form, text/plain)."""
    http_status = 415


class BodyTimeoutError(InputError):
    """A request body that stopped arriving before its end."""
    http_status = 408


class CancelledError(PriorfxError):
    """Work was cancelled by the user (Ctrl-C, Cancel button, DELETE on a job)."""
    code, exit_code, http_status = "cancelled", 130, 409


class NotFoundError(PriorfxError):
    """An unknown job, model or session id."""
    code, exit_code, http_status = "not_found", 12, 404


class DeviceUnavailableError(PriorfxError):
    """The asked-for device (--device cuda, mps, directml, coreml) is not in this
    install or on this machine; the hint names what is there and what to install."""
    code, exit_code, http_status = "device", 13, 503


class ModelUnfitError(PriorfxError):
    """A model does not fit the prior contract of its role (checked by a dry run
    at `priorfx models add`, and when a model without that role is asked to
    serve as a prior)."""
    code, exit_code, http_status = "model_unfit", 14, 422


_BY_CODE = {c.code: c for c in (
    PriorfxError, UsageError, InputError, ModelMissingError, ModelChecksumError,
    NoFaceError, EngineUnreachableError, AuthError, ForbiddenError, LimitError,
    VersionMismatchError, OutputError, CancelledError, NotFoundError,
    DeviceUnavailableError, ModelUnfitError)}

EXIT_CODES = {c.__name__: c.exit_code for c in _BY_CODE.values()}
