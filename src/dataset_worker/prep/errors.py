"""Errors of the preparation use-cases; the API maps each kind to one HTTP status."""

from __future__ import annotations


class PrepError(Exception):
    """Base class: the message is a sentence naming the offending field or value and the rule."""


class NotFound(PrepError):
    """A preparation, job or other named thing does not exist (HTTP 404)."""


class InvalidParameter(PrepError):
    """A request breaks a rule, or asks for a state change that is not allowed (HTTP 400).

    `field` is the request field the rule is about, when there is one (the API names it).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidParameters(InvalidParameter):
    """Several fields of one request break their rules: each problem names its own field.

    The message lists every problem, so a caller that only prints it still sees them all.
    """

    def __init__(self, problems: list[InvalidParameter]) -> None:
        super().__init__("; ".join(str(problem) for problem in problems), field=problems[0].field)
        self.problems = problems


class Conflict(PrepError):
    """The request would duplicate something unique, such as a preparation name (HTTP 409)."""
