"""The settings a worker is started with, validated once for the HTTP API (docs/api.md#start-the-worker).

Every field is optional and an omitted field takes the CLI's default (never false/0, the mistake
of docs/architecture.md#differences-from-singularity item 8). Types are strict (a string for `concurrency` is refused, not
coerced), unknown fields are refused, and each rule names the field it checks.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from dataset_worker.durations import DurationError, format_duration, parse_duration

MAX_CONCURRENCY = 64
# As worker/runtime (config.MAX_ATTEMPTS, retry.DEFAULT_MAX_ATTEMPTS); a unit test keeps them equal.
MAX_ATTEMPTS = 100
DEFAULT_MAX_ATTEMPTS = 5


class WorkerLaunchConfig(BaseModel):
    """Flags of `dataset-worker run`, in the API's camelCase spelling."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    concurrency: int = Field(
        default=1, description=f"Worker threads, 1 to {MAX_CONCURRENCY}.", examples=[2]
    )
    enable_scan: bool = Field(default=True, alias="enableScan", description="Claim scan jobs.")
    enable_pack: bool = Field(default=True, alias="enablePack", description="Claim pack jobs.")
    enable_dag: bool = Field(default=True, alias="enableDag", description="Claim daggen jobs.")
    exit_on_complete: bool = Field(
        default=False,
        alias="exitOnComplete",
        description="Each thread exits the first time it finds no job.",
    )
    exit_on_error: bool = Field(
        default=False,
        alias="exitOnError",
        description="The whole worker exits (code 1) on the first error.",
    )
    min_interval: str = Field(
        default="5s",
        alias="minInterval",
        description='Go duration: first and shortest wait between polls, e.g. "5s".',
    )
    max_interval: str = Field(
        default="160s",
        alias="maxInterval",
        description='Go duration: longest wait between polls, e.g. "2m40s".',
    )
    max_attempts: int = Field(
        default=DEFAULT_MAX_ATTEMPTS,
        alias="maxAttempts",
        description=f"Attempts a transiently failing job gets, 1 to {MAX_ATTEMPTS} "
        "(exponential backoff between them).",
        examples=[5],
    )

    @field_validator("concurrency")
    @classmethod
    def _concurrency_in_range(cls, value: int) -> int:
        if not 1 <= value <= MAX_CONCURRENCY:
            raise PydanticCustomError(
                "concurrency_range",
                "concurrency must be between 1 and {maximum}, got {value}",
                {"maximum": MAX_CONCURRENCY, "value": value},
            )
        return value

    @field_validator("max_attempts")
    @classmethod
    def _attempts_in_range(cls, value: int) -> int:
        if not 1 <= value <= MAX_ATTEMPTS:
            raise PydanticCustomError(
                "max_attempts_range",
                "maxAttempts must be between 1 and {maximum}, got {value}",
                {"maximum": MAX_ATTEMPTS, "value": value},
            )
        return value

    @field_validator("min_interval", "max_interval")
    @classmethod
    def _positive_duration(cls, value: str, info: Any) -> str:
        name = "minInterval" if info.field_name == "min_interval" else "maxInterval"
        try:
            seconds = parse_duration(value)
        except DurationError as exc:
            raise PydanticCustomError(
                "duration_parsing",
                "{field} is not a Go duration: {reason}",
                {"field": name, "reason": str(exc)},
            ) from None
        if seconds <= 0:
            raise PydanticCustomError(
                "duration_positive",
                '{field} must be a positive duration, got "{value}"',
                {"field": name, "value": value},
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not (self.enable_scan or self.enable_pack or self.enable_dag):
            raise PydanticCustomError(
                "no_job_types",
                "at least one of enableScan, enablePack, enableDag must be true",
            )
        if self.min_seconds > self.max_seconds:
            raise PydanticCustomError(
                "interval_order",
                "minInterval ({minimum}) must not be greater than maxInterval ({maximum})",
                {
                    "minimum": format_duration(self.min_seconds),
                    "maximum": format_duration(self.max_seconds),
                },
            )
        return self

    @property
    def min_seconds(self) -> float:
        return parse_duration(self.min_interval)

    @property
    def max_seconds(self) -> float:
        return parse_duration(self.max_interval)

    def as_json(self) -> dict[str, Any]:
        """The effective config, every field spelled out (what status shows)."""
        return self.model_dump(mode="json", by_alias=True)

    def to_args(self) -> list[str]:
        """The `dataset-worker run` flags for this config, every setting passed explicitly."""
        args = ["--concurrency", str(self.concurrency)]
        for flag, enabled in (
            ("scan", self.enable_scan),
            ("pack", self.enable_pack),
            ("dag", self.enable_dag),
        ):
            args.append(f"--enable-{flag}" if enabled else f"--no-enable-{flag}")
        if self.exit_on_complete:
            args.append("--exit-on-complete")
        if self.exit_on_error:
            args.append("--exit-on-error")
        args += ["--min-interval", self.min_interval, "--max-interval", self.max_interval]
        args += ["--max-attempts", str(self.max_attempts)]
        return args
