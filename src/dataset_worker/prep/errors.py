"""Errors of the preparation use-cases; the API maps each kind to one HTTP status."""

from __future__ import annotations


class PrepError(Exception):
    """Base class: the message is a sentence naming the offending field or value and the rule."""


class NotFound(PrepError):
    """A preparation, job or other named thing does not exist (HTTP 404)."""


class InvalidParameter(PrepError):
    """A request breaks a rule, or asks for a state change that is not allowed (HTTP 400)."""


class Conflict(PrepError):
    """The request would duplicate something unique, such as a preparation name (HTTP 409)."""
