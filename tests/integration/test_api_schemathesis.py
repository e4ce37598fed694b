"""Property-based checks of the whole API from its own OpenAPI document (schemathesis).

Whatever the request (valid or not, per the schema), the server must not answer 5xx, must answer
only status codes the document declares for the operation, with the declared content type and
body schema, and must reject schema-invalid input with a 4xx. A worker runs during the test, so a
valid start gets the documented 409. Left out: create a preparation (it creates folders wherever
the generated path points), the log stream (it never ends), and stop (valid starts would then
launch workers); their codes are covered by test_api_status_codes.py.

Cases are drawn with Hypothesis from each operation's strategy, positive and negative, at most
`EXAMPLES` per operation and mode. (schemathesis's own pytest plugin does not run on pytest 9.)
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
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

from tests.integration.api_support import (
    TOKEN,
    AdminServer,
    start_worker,
)
from tests.support.openapi import Operation, OperationCase, valid_operations

EXAMPLES = 30  # derandomized: the same 30 cases per operation and mode on every run
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]


@pytest.mark.slow
@pytest.mark.timeout(600)  # hundreds of real requests: 110 s on a slow, loaded CI machine
def test_no_server_errors_and_only_documented_codes(admin_server: AdminServer) -> None:
    start_worker(admin_server.client())
    schema = (
        schemathesis.openapi.from_url(f"{admin_server.url}/openapi.json")
        .exclude(method="POST", path="/api/preparations")
        .exclude(path="/api/dataset-worker/logs/stream")
        .exclude(method="POST", path="/api/dataset-worker/stop")
    )
    operations = valid_operations(schema)
    assert len(operations) >= 15
    failures: list[str] = []
    for operation in operations:
        for mode in GenerationMode:
            try:
                property_test(operation, mode)()
            except Unsatisfiable:
                assert mode.is_negative  # no parameter or body to get wrong: nothing to check
            except (Failure, FailureGroup, AssertionError) as exc:
                failures.append(f"{operation.label} [{mode}]: {exc}")
    assert not failures, "\n\n".join(failures)


def property_test(operation: Operation, mode: GenerationMode) -> Callable[[], None]:
    """A Hypothesis test that calls `operation` with cases of `mode` and validates each reply."""
    checks = NEGATIVE_CHECKS if mode.is_negative else CHECKS

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def check(case: OperationCase) -> None:
        case.call_and_validate(headers=AUTH, checks=checks, timeout=60)

    return check
