"""Why a window was not estimated, as the HTTP status and JSON body a client gets.

Each outcome is plain data (status, message, field, retry-after) so it crosses a process pipe as
msgpack and the app turns it into a reply without knowing where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Failure", "Outcome", "busy", "deadline_exceeded", "not_ready", "worker_lost"]


@dataclass(frozen=True)
class Failure:
    """A window that got no poses: the reply's status and `{"error", "field"}` body."""

    status: int
    error: str
    field: str = ""
    #: Seconds for a Retry-After header (429/503: the client should come back), or None.
    retry_after: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "error": self.error,
            "field": self.field,
            "retry_after": self.retry_after,
        }

    @classmethod
    def from_dict(cls, value: dict[str, object]) -> Failure:
        retry = value.get("retry_after")
        return cls(
            status=int(value["status"]),  # type: ignore[call-overload]
            error=str(value["error"]),
            field=str(value.get("field") or ""),
            retry_after=int(retry) if isinstance(retry, int) else None,
        )


#: What estimating one window gives: the reply body (msgpack poses), or why not.
Outcome = bytes | Failure


def busy(retry_after: int) -> Failure:
    return Failure(429, "the server's queue is full; retry later", retry_after=retry_after)


def not_ready(retry_after: int) -> Failure:
    return Failure(503, "the server is warming up; retry later", retry_after=retry_after)


def worker_lost(retry_after: int) -> Failure:
    return Failure(503, "the worker estimating this window stopped; retry", retry_after=retry_after)


def deadline_exceeded(deadline_s: float) -> Failure:
    return Failure(504, f"no result within the server's {deadline_s:g} s deadline")
