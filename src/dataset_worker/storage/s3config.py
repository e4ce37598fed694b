"""S3 storage settings without the S3 client: where to connect and how, checked and parsed.

Kept apart from `s3client` (boto3) so that what only validates a storage's URL and config (the
admin server's storage routes, the CLI) does not load boto3 and botocore: about a sixth of the
admin server's start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from dataset_worker.storage.base import StorageError

MIB = 1 << 20
MIN_PART_SIZE = 5 * MIB  # S3's smallest part (all but the last)
MAX_PART_SIZE = 5 << 30
DEFAULT_SCAN_SHARDS = 8  # at most 32: the client's connection pool
DEFAULT_PART_SIZE = 8 * MIB  # 10,000 parts hold 78 GiB, above the largest 31.5 GiB CAR

# Keys a storage's config may hold. Anything that looks like a secret is refused.
_SETTINGS = {
    "endpoint": "endpoint URL of an S3-compatible server (http:// or https://)",
    "region": "region name",
    "profile": "profile of the shared AWS config/credentials files",
    "anonymous": "true to send unsigned requests (public buckets)",
    "read_timeout": "seconds without data before a read is retried",
    "connect_timeout": "seconds to wait for a connection",
    "max_attempts": "tries per request before giving up",
    "part_size": "multipart upload part size in bytes",
    "addressing_style": "path, virtual or auto",
    "scan_shards": "prefixes a scan lists ahead in parallel (1: one stream)",
}
# Secrets a storage may hold only when its creator allowed it explicitly (--allow-secret-in-db).
STORABLE_SECRETS = ("access_key_id", "secret_access_key", "session_token")
SECRET_KEYS = frozenset(
    {
        "access_key_id",
        "secret_access_key",
        "session_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "secret",
        "password",
    }
)


@dataclass(frozen=True, slots=True)
class S3Location:
    """A bucket and a key prefix ("" or ending without a slash)."""

    bucket: str
    prefix: str

    @property
    def root(self) -> str:
        """The key prefix objects of this storage start with ("" or "prefix/")."""
        return f"{self.prefix}/" if self.prefix else ""

    def url(self, key: str | None = None) -> str:
        """`s3://bucket/key` for messages (the storage root when `key` is None)."""
        if key is None:
            return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return f"s3://{self.bucket}/{key}"


def parse_s3_url(url: str) -> S3Location:
    """`s3://bucket[/prefix]` -> S3Location; StorageError naming the rule otherwise."""
    if not url.startswith("s3://"):
        raise StorageError(f'S3 path "{url}" must start with s3:// (s3://bucket/prefix)')
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if "@" in bucket:
        # s3://KEY:SECRET@bucket: never stored, shown or echoed (this message quotes nothing).
        raise StorageError(
            "S3 path must not carry credentials (s3://KEY:SECRET@bucket): give the key pair "
            "through the AWS environment, a profile, or --secret-from-stdin"
        )
    if not bucket or "." == bucket or ".." == bucket:
        raise StorageError(f'S3 path "{url}" has no bucket name (s3://bucket/prefix)')
    prefix = prefix.strip("/")
    for part in prefix.split("/") if prefix else ():
        if part in ("", ".", ".."):
            raise StorageError(f'S3 path "{url}" has an empty, "." or ".." segment in its prefix')
    return S3Location(bucket, prefix)


@dataclass(frozen=True, slots=True)
class S3Config:
    """Where and how to connect; hashable so clients can be shared per config."""

    endpoint: str | None = None
    region: str | None = None
    profile: str | None = None
    anonymous: bool = False
    read_timeout: float = 60.0
    connect_timeout: float = 10.0
    max_attempts: int = 8
    part_size: int = DEFAULT_PART_SIZE
    addressing_style: str | None = None
    scan_shards: int = DEFAULT_SCAN_SHARDS
    # Only when stored on purpose; never shown (repr=False) and masked in every view.
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_mapping(
        cls, config: Mapping[str, Any] | None, *, allow_secrets: bool = False
    ) -> S3Config:
        """Validate a `storages.config` mapping; StorageError names the key and the rule.

        Secrets are refused unless `allow_secrets`, and then only the three AWS key fields.
        """
        values = dict(config or {})
        for key in values:
            if key.lower() in SECRET_KEYS and not (allow_secrets and key in STORABLE_SECRETS):
                raise StorageError(
                    f'S3 config key "{key}" holds a secret: credentials come from the AWS '
                    "environment variables, shared config/credentials files or a profile"
                    + ("" if allow_secrets else " (or allow storing them in the database)")
                )
            if key not in _SETTINGS and key not in STORABLE_SECRETS:
                known = ", ".join(sorted(_SETTINGS))
                raise StorageError(f'unknown S3 config key "{key}" (known keys: {known})')
        _check_key_pair(values)
        return cls(
            endpoint=_opt_str(values, "endpoint", url=True),
            region=_opt_str(values, "region"),
            profile=_opt_str(values, "profile"),
            anonymous=_bool(values, "anonymous"),
            read_timeout=_number(values, "read_timeout", 60.0, 0.1, 3600.0),
            connect_timeout=_number(values, "connect_timeout", 10.0, 0.1, 600.0),
            max_attempts=int(_number(values, "max_attempts", 8, 1, 100)),
            part_size=int(
                _number(values, "part_size", DEFAULT_PART_SIZE, MIN_PART_SIZE, MAX_PART_SIZE)
            ),
            addressing_style=_choice(values, "addressing_style", ("path", "virtual", "auto")),
            scan_shards=int(_number(values, "scan_shards", DEFAULT_SCAN_SHARDS, 1, 32)),
            access_key_id=_opt_str(values, "access_key_id"),
            secret_access_key=_opt_str(values, "secret_access_key"),
            session_token=_opt_str(values, "session_token"),
        )


def _check_key_pair(values: Mapping[str, Any]) -> None:
    """A stored key works only as a pair: boto3 refuses half of one at the first request."""
    given = [key for key in ("access_key_id", "secret_access_key") if values.get(key)]
    if len(given) == 1:
        missing = "secret_access_key" if given[0] == "access_key_id" else "access_key_id"
        raise StorageError(f'S3 config "{given[0]}" needs "{missing}" too')
    if values.get("session_token") and not given:
        raise StorageError(
            'S3 config "session_token" needs "access_key_id" and "secret_access_key"'
        )


def _opt_str(values: Mapping[str, Any], key: str, *, url: bool = False) -> str | None:
    value = values.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise StorageError(f'S3 config "{key}" must be a string')
    if url and "@" in urlsplit(value).netloc:
        # http://KEY:SECRET@host: never stored, shown or echoed (this message quotes nothing).
        raise StorageError(
            f'S3 config "{key}" must not carry credentials (http://KEY:SECRET@host): give the '
            "key pair through the AWS environment, a profile, or --secret-from-stdin"
        )
    if url and not value.startswith(("http://", "https://")):
        raise StorageError(f'S3 config "{key}" must be an http:// or https:// URL, not "{value}"')
    return value


def _bool(values: Mapping[str, Any], key: str) -> bool:
    value = values.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise StorageError(f'S3 config "{key}" must be true or false')


def _number(values: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = values.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StorageError(f'S3 config "{key}" must be a number') from None
    if not low <= number <= high:
        raise StorageError(f'S3 config "{key}" must be between {low:g} and {high:g}')
    return number


def _choice(values: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str | None:
    value = values.get(key)
    if value is None:
        return None
    if value not in choices:
        raise StorageError(f'S3 config "{key}" must be one of {", ".join(choices)}')
    return str(value)
