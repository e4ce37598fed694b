"""Typed access to the operations of an OpenAPI document loaded by schemathesis."""

from __future__ import annotations

from typing import Any, TypeAlias

import schemathesis
from schemathesis.core.result import Ok

# schemathesis parametrises operations by parameter, response and security types it fills in
# itself; the tests only read labels and paths, and draw cases.
Operation: TypeAlias = "schemathesis.APIOperation[Any, Any, Any, Any]"
OperationCase: TypeAlias = "schemathesis.Case[Operation]"


def valid_operations(schema: schemathesis.BaseSchema) -> list[Operation]:
    """Every operation of `schema`; one the document describes wrongly fails the test."""
    operations: list[Operation] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    return operations
