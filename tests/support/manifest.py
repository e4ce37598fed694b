"""Checking super-manifests in tests: the JSON Schema in the package, and the file entries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

import dataset_worker

SCHEMA_PATH = Path(dataset_worker.__file__).parent / "prep" / "super-manifest.schema.json"
META_ARGS = (
    "--description", "Test tree", "--license", "CC-BY-4.0 OR MIT",
    "--project-url", "https://example.org/data", "--open-with", "any file browser",
)  # fmt: skip


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_super_manifest(document: Any) -> None:
    """Raise jsonschema.ValidationError unless `document` follows the schema."""
    _validator().validate(document)


def file_entries(contents: list[dict[str, Any]], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, entry) of every file and split file in a `contents` tree."""
    for entry in contents:
        path = prefix + entry["name"]
        if entry["@type"] == "directory":
            yield from file_entries(entry["contents"], path + "/")
        else:
            yield path, entry


def sha256_hex(path: Path) -> str:
    """What `sha256sum` prints for the file."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
