"""S3 clients and retries shared by the S3 source and output (settings: `s3config`).

Credentials come only from boto3's standard chain (AWS_* environment variables, the shared
config and credentials files, a named profile, instance roles); a storage's `config` holds
where to connect and how, never a secret. Every call goes through `S3Api.call`, which retries
transient failures (connection resets, timeouts, 5xx, SlowDown) with bounded exponential
backoff and jitter; botocore's own retries are turned off so there is one policy in one place.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions
import botocore.session
import botocore.utils
import urllib3.exceptions
from botocore import UNSIGNED

from dataset_worker.storage.base import StorageError
from dataset_worker.storage.s3config import S3Config

T = TypeVar("T")

NO_CREDENTIALS = (
    "no S3 credentials found: this process has no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "in its environment, no credentials file (~/.aws/credentials, or AWS_SHARED_CREDENTIALS_FILE) "
    'and no usable profile (the storage\'s "profile", or AWS_PROFILE); a worker started from the '
    "admin page has the server's environment and home (docs/operations.md#storage-credentials); "
    "a public bucket needs --anonymous"
)

_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "503",
        "500",
        "502",
        "504",
    }
)
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,  # connect/read timeouts, resets, closed connections
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.HTTPClientError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: network errors, timeouts, 5xx, throttling."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return str(error.get("Code", "")) in _TRANSIENT_CODES or status >= 500 or status == 429
    return isinstance(exc, _TRANSIENT_ERRORS)


def error_code(exc: BaseException) -> str:
    """The S3 error code of a ClientError ("" for anything else)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def status_code(exc: BaseException) -> int:
    """The HTTP status of a ClientError (0 for anything else)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Bounded exponential backoff with jitter: delay n is in [d/2, d], d = min(cap, base*2^n)."""

    attempts: int = 8
    base: float = 0.1
    cap: float = 5.0

    def delays(self) -> Iterator[float]:
        """One delay before each retry (attempts - 1 of them)."""
        for n in range(self.attempts - 1):
            step = min(self.cap, self.base * (2**n))
            yield step / 2 + random.uniform(0, step / 2)


class S3Api:
    """A shared boto3 client plus the retry policy used for every call."""

    def __init__(self, client: Any, backoff: Backoff) -> None:
        self.client = client
        self.backoff = backoff

    def call(self, operation: str, /, **params: Any) -> Any:
        """`client.<operation>(**params)`, retried while it fails transiently."""
        method = getattr(self.client, operation)
        return self.retry(lambda: method(**params), operation)

    def retry(self, action: Callable[[], T], what: str) -> T:
        """Run `action`, retrying transient failures; the last error is raised as it is, but
        missing credentials as a StorageError that says where they are looked for."""
        delays = self.backoff.delays()
        while True:
            try:
                return action()
            except botocore.exceptions.NoCredentialsError:
                raise StorageError(NO_CREDENTIALS) from None
            except Exception as exc:
                if not is_transient(exc):
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise
                time.sleep(delay)


_clients: dict[S3Config, S3Api] = {}
_clients_lock = threading.Lock()


def s3_api(config: S3Config) -> S3Api:
    """The shared client for `config` (boto3 clients are thread-safe; building one is slow)."""
    with _clients_lock:
        api = _clients.get(config)
        if api is None:
            api = S3Api(_make_client(config), Backoff(attempts=config.max_attempts))
            _clients[config] = api
        return api


def parse_timestamp(value: Any) -> datetime:
    """A listing's ISO 8601 UTC time (`2026-01-02T03:04:05.678Z`) at C speed, else botocore's
    parser (HTTP dates, offsets). botocore's own goes through dateutil: about 0.3 ms a key, the
    most costly part of a 1000-key listing page."""
    if isinstance(value, str) and value.endswith("Z") and "T" in value:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value)
    parsed: datetime = botocore.utils.parse_timestamp(value)
    return parsed


def _make_client(config: S3Config) -> Any:
    options: dict[str, Any] = {
        "retries": {"total_max_attempts": 1, "mode": "standard"},  # S3Api.retry: one policy
        "connect_timeout": config.connect_timeout,
        "read_timeout": config.read_timeout,
        # Some S3-compatible servers (rclone's) reject or mangle the newer default checksums.
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "max_pool_connections": 32,
        "tcp_keepalive": True,
    }
    style = config.addressing_style or ("path" if config.endpoint else None)
    if style:
        options["s3"] = {"addressing_style": style}
    if config.anonymous:
        options["signature_version"] = UNSIGNED
    try:
        core = botocore.session.get_session()
        core.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=parse_timestamp
        )
        session = boto3.session.Session(botocore_session=core, profile_name=config.profile)
        return session.client(
            "s3",
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            aws_session_token=config.session_token,
            endpoint_url=config.endpoint,
            region_name=config.region or session.region_name or "us-east-1",
            config=botocore.config.Config(**options),
        )
    except botocore.exceptions.BotoCoreError as exc:
        raise StorageError(f"cannot set up the S3 client: {exc}") from None
