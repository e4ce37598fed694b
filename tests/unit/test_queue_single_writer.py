"""db/queue/ is the only writer of job state (docs/architecture.md#job-states-and-transitions).

An AST walk over src/: outside db/queue/ no module may assign `<x>.state = JobState…`, build a
`Job(...)` row, write `update(Job)` / `insert(Job)` (or the `jobs` table), or pass `state=` to
`.values(...)`. Reads (`select(Job.state)`) and deleting a preparation's rows are fine. And the
admin server (`api/`) never imports the worker package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import dataset_worker

SRC = Path(dataset_worker.__file__).parent
QUEUE = SRC / "db" / "queue"
JOB_NAMES = {"Job", "jobs"}  # the ORM class and the Core table


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        if QUEUE in path.parents:
            continue
        yield path, ast.parse(path.read_text(), str(path))


def _name(node: ast.expr) -> str:
    """`Job`, `models.Job`, `Job.__table__` → the name that matters ("Job"), else ""."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr if node.attr != "__table__" else _name(node.value)
    return ""


def _mentions_job_state(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "JobState" for n in ast.walk(node))


def job_state_writes(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, what) for every write of job state the tree holds."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr == "state"
                    and node.value is not None
                    and _mentions_job_state(node.value)
                ):
                    found.append((node.lineno, "assigns .state = JobState…"))
        if not isinstance(node, ast.Call):
            continue
        callee = _name(node.func)
        if callee in {"update", "insert"} and node.args and _name(node.args[0]) in JOB_NAMES:
            found.append((node.lineno, f"{callee}({_name(node.args[0])})"))
        if callee == "Job":
            found.append((node.lineno, "builds a Job(...) row"))
        if callee == "setattr" and len(node.args) >= 2 and _mentions_job_state(node):
            found.append((node.lineno, "setattr(…, JobState…)"))
        if (
            isinstance(node.func, ast.Attribute)
            and node.func.attr == "values"
            and any(keyword.arg == "state" for keyword in node.keywords)
        ):
            found.append((node.lineno, ".values(state=…)"))
    return sorted(found)


def test_only_db_queue_writes_job_state() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{line}: {what}"
        for path, tree in _modules()
        for line, what in job_state_writes(tree)
    ]
    assert offenders == [], "job state is written outside db/queue/:\n" + "\n".join(offenders)


def test_the_check_finds_each_kind_of_write() -> None:
    source = """
job.state = JobState.PAUSED
session.execute(update(Job).where(Job.id == 1).values(error_message=""))
session.execute(insert(models.Job.__table__).values(type="scan"))
session.add(Job(type=JobType.SCAN, attachment_id=1))
setattr(job, "state", JobState.READY)
session.execute(update(other).values(state="x"))
"""
    found = [what for _line, what in job_state_writes(ast.parse(source))]
    assert found == [
        "assigns .state = JobState…",
        "update(Job)",
        "insert(Job)",
        "builds a Job(...) row",
        "setattr(…, JobState…)",
        ".values(state=…)",
    ]
    reads = "rows = session.execute(select(Job.state).where(Job.state == JobState.READY))"
    assert job_state_writes(ast.parse(reads)) == []


def test_the_admin_server_never_imports_the_worker() -> None:
    offenders = []
    for path in sorted((SRC / "api").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            offenders += [
                f"{path.relative_to(SRC)}:{getattr(node, 'lineno', 0)}: {name}"
                for name in names
                if name.startswith("dataset_worker.worker")
            ]
    assert offenders == []
