"""Errors of the deal use-cases; the admin API maps each kind to one HTTP status."""

from __future__ import annotations


class DealError(Exception):
    """Base class: the message is a sentence naming the offending field or value and the rule."""


class DealNotFound(DealError):
    """A deal, schedule or preparation does not exist (HTTP 404)."""


class InvalidDealRequest(DealError):
    """A request breaks a rule (HTTP 400); `field` names the request field when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class WalletUnavailable(DealError):
    """The client wallet's key cannot be loaded (no keystore entry, wrong passphrase)."""
