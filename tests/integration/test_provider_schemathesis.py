"""Property-based checks of the content provider from its own OpenAPI document (schemathesis).

Whatever the request (valid or not, per the schema), the provider must not answer 5xx, must answer
only status codes the document declares, with the declared content type and body schema, and must
reject schema-invalid input with a 4xx. In positive mode half the cases ask for a piece that
exists, so the Range and conditional headers are fuzzed against real bytes too.

Cases are drawn with Hypothesis from each operation's strategy, at most `EXAMPLES` per operation
and mode. (schemathesis's own pytest plugin does not run on pytest 9.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.provider_support import (
    PreparedTree,
    Provider,
    fresh_database_url,
    prepare_tree,
    running_provider,
)
from tests.support.openapi import Operation, OperationCase, valid_operations

EXAMPLES = 60
# Realistic Range values (random strings almost never are one): single, suffix, open, several.
RANGES = st.from_regex(
    r"\Abytes=([0-9]{1,7}-[0-9]{0,7}|-[0-9]{1,7})(, ?([0-9]{1,7}-[0-9]{0,7}|-[0-9]{1,7})){0,3}\Z"
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[PreparedTree, Provider]]:
    url = fresh_database_url(request.param, request, tmp_path)
    tree = prepare_tree(url, tmp_path)
    for provider in running_provider(url, tmp_path):
        yield tree, provider


@pytest.mark.slow
@pytest.mark.timeout(600)  # hundreds of real requests: 110 s on a slow, loaded CI machine
def test_no_server_errors_and_only_documented_codes(
    served: tuple[PreparedTree, Provider],
) -> None:
    tree, provider = served
    schema = schemathesis.openapi.from_url(f"{provider.url}/openapi.json")
    operations = valid_operations(schema)
    labels = sorted(operation.label for operation in operations)
    assert labels == [
        "GET /ipfs/{cid}",
        "GET /ipfs/{cid}/{path}",
        "GET /piece/metadata/{pieceCid}",
        "GET /piece/{pieceCid}",
        "HEAD /ipfs/{cid}",
        "HEAD /ipfs/{cid}/{path}",
        "HEAD /piece/{pieceCid}",
    ]
    known = [piece.cid for piece in tree.pieces]
    failures: list[str] = []
    for operation in operations:
        for mode in GenerationMode:
            try:
                property_test(operation, mode, known)()
            except Unsatisfiable:
                assert mode.is_negative  # no parameter to get wrong: nothing to check
            except (Failure, FailureGroup, AssertionError) as exc:
                failures.append(f"{operation.label} [{mode}]: {exc}")
    assert not failures, "\n\n".join(failures)
    assert "Traceback" not in provider.log()


def property_test(
    operation: Operation, mode: GenerationMode, known: list[str]
) -> Callable[[], None]:
    """A Hypothesis test that calls `operation` with cases of `mode` and validates each reply."""
    checks = NEGATIVE_CHECKS if mode.is_negative else CHECKS
    pieces = st.sampled_from([None, *known]) if not mode.is_negative else st.just(None)
    ranges = st.one_of(st.none(), RANGES) if not mode.is_negative else st.just(None)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode), piece=pieces, byte_ranges=ranges)
    def check(case: OperationCase, piece: str | None, byte_ranges: str | None) -> None:
        if piece is not None and case.path_parameters is not None:
            case.path_parameters["pieceCid"] = piece
            if byte_ranges is not None and "/metadata/" not in operation.path:
                case.headers["Range"] = byte_ranges
        case.call_and_validate(checks=checks, timeout=60)

    return check
