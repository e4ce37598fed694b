"""The dataset description a super-manifest carries: given once, remembered by the preparation.

The Filecoin Data Preparation Manifest Specification v0 requires a name, description, version,
license (SPDX), project URL and "open with" guidance, and allows up to 32 tags. Each export takes
what the caller gives, falls back to what the preparation remembers (`preparations.manifest_meta`)
and then to the defaults (name: the preparation's name; version: the date of the first export);
the result is validated and remembered for the next export. Fields are named as the API spells
them (camelCase); the CLI flags are the same words in kebab-case.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field

from dataset_worker.prep.errors import InvalidParameter
from dataset_worker.prep.views import View

MAX_TAGS = 32
# (name in the API, attribute of ManifestMetaInput, key in the manifest, longest value allowed)
FIELDS = (
    ("datasetName", "dataset_name", "name", 128),
    ("description", "description", "description", 4096),
    ("version", "version", "version", 64),
    ("license", "license", "license", 64),
    ("projectUrl", "project_url", "project_url", 2048),
    ("openWith", "open_with", "open_with", 256),
)
TAG_LENGTH = 64
_SPDX_ID = re.compile(
    r"(LicenseRef-|DocumentRef-[A-Za-z0-9.-]+:LicenseRef-)?[A-Za-z0-9][A-Za-z0-9.-]*\+?"
)
_SPDX_OPERATORS = {"AND", "OR", "WITH"}


class ManifestMetaInput(View):
    """What a caller may give for the super-manifest; None (or absent) keeps the remembered value."""

    dataset_name: str | None = Field(
        default=None,
        description="Dataset name (default: the preparation's name), at most 128 characters.",
    )
    description: str | None = Field(
        default=None, description="What the dataset is, at most 4096 characters."
    )
    version: str | None = Field(
        default=None,
        description="Dataset version, typically a date (default: the first export's date, UTC).",
    )
    license: str | None = Field(
        default=None,
        description="SPDX license identifier or expression, e.g. CC-BY-4.0 or Apache-2.0 OR MIT.",
    )
    project_url: str | None = Field(
        default=None, description="http(s) URL of the project behind the dataset."
    )
    open_with: str | None = Field(
        default=None, description="Guidance on the tool needed to use the data, e.g. 'web browser'."
    )
    tags: list[str] | None = Field(
        default=None, description=f"Up to {MAX_TAGS} tags (replace the remembered ones)."
    )

    def given(self) -> bool:
        """True when any field was given."""
        return any(value is not None for value in self.model_dump().values())


def resolve_meta(
    stored: dict[str, Any] | None,
    given: ManifestMetaInput,
    prep_name: str,
    today: datetime | None = None,
) -> dict[str, Any]:
    """The manifest's fields (manifest keys) from `given`, else `stored`, else the defaults;
    InvalidParameter names every missing required field, or the first invalid one."""
    previous = stored or {}
    date = (today or datetime.now(UTC)).strftime("%Y-%m-%d")
    defaults = {"name": prep_name, "version": date}
    values: dict[str, Any] = {}
    for _api, attribute, key, _limit in FIELDS:
        value = getattr(given, attribute)
        if value is None:
            value = previous.get(key, defaults.get(key))
        values[key] = value.strip() if isinstance(value, str) else value
    missing = [api for api, _attribute, key, _limit in FIELDS if not values[key]]
    if missing:
        raise InvalidParameter(
            "the super-manifest needs " + ", ".join(missing) + " (required by the manifest "
            "specification; give them once, the preparation remembers them)"
        )
    for api, _attribute, key, limit in FIELDS:
        _check_length(api, values[key], limit)
    _check_license(values["license"])
    _check_url(values["project_url"])
    tags = given.tags if given.tags is not None else previous.get("tags", [])
    values["tags"] = _checked_tags(tags)
    return values


def _check_length(field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidParameter(f"{field} must be at most {limit} characters, got {len(value)}")


def _check_license(value: str) -> None:
    """An SPDX license expression: ids joined by AND / OR / WITH, with balanced parentheses."""
    tokens = re.findall(r"\(|\)|[^\s()]+", value)
    depth, expect_id = 0, True
    for token in tokens:
        if token == "(" and expect_id:
            depth += 1
        elif token == ")" and not expect_id and depth > 0:
            depth -= 1
        elif expect_id and token.upper() not in _SPDX_OPERATORS and _SPDX_ID.fullmatch(token):
            expect_id = False
        elif not expect_id and token.upper() in _SPDX_OPERATORS:
            expect_id = True
        else:
            break
    else:
        if tokens and depth == 0 and not expect_id:
            return
    raise InvalidParameter(
        f'license must be an SPDX license identifier or expression (e.g. "CC-BY-4.0", '
        f'"Apache-2.0 OR MIT"), got "{value}"'
    )


def _check_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        raise InvalidParameter(f'projectUrl must be an http:// or https:// URL, got "{value}"')


def _checked_tags(tags: list[str]) -> list[str]:
    if len(tags) > MAX_TAGS:
        raise InvalidParameter(f"tags: at most {MAX_TAGS} tags, got {len(tags)}")
    cleaned = [tag.strip() for tag in tags]
    for tag in cleaned:
        if not tag:
            raise InvalidParameter("tags must not be empty")
        if len(tag) > TAG_LENGTH:
            raise InvalidParameter(
                f'tags must be at most {TAG_LENGTH} characters each, got {len(tag)} for "{tag[:20]}…"'
            )
    return cleaned
