"""README's HTTP walk-through works as written: each line of its curl block runs with bash against
a real `dataset-worker demo` (and the real worker process), on SQLite and PostgreSQL.

Conventions of that block (README.md, the ```sh block that contains `curl`):
- it runs from the folder where `make run` runs, with the state dir `make run` gives
  (`--state-dir .dataset-worker`), so `.dataset-worker/admin-token` is the token;
  only the port of `127.0.0.1:9090` is replaced by the test server's;
- every command exits 0 and every HTTP reply is 2xx, except a line whose comment says
  `# 409 when …`, which may also answer 409 (the step is refused when its condition holds);
- a `curl -N` line follows a stream: the test reads it for a few seconds, then stops it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.api_support import kill_worker
from tests.integration.test_api_cli import env_without_token
from tests.support.ports import free_port
from tests.support.wait import wait_answering

README = Path(__file__).resolve().parents[2] / "README.md"
README_PORT = "127.0.0.1:9090"
STREAM_SECONDS = 3


def make_run_state_dir() -> str:
    """The state dir `make run` passes (the Makefile's STATE_DIR default)."""
    makefile = (README.parent / "Makefile").read_text()
    match = re.search(r"^STATE_DIR \?= (\S+)$", makefile, flags=re.MULTILINE)
    assert match is not None, "the Makefile sets no STATE_DIR"
    return match[1]


EXPECTS_409 = re.compile(r"#.*\b409 when\b")


@dataclass(frozen=True)
class Step:
    """One command of the walk-through (continuation lines joined)."""

    number: int
    command: str

    @property
    def may_conflict(self) -> bool:
        return EXPECTS_409.search(self.command) is not None

    @property
    def streams(self) -> bool:
        return re.search(r"\bcurl\b.*\s-N\b", self.command) is not None


def walkthrough_steps(readme: str) -> list[Step]:
    """The commands of the first ```sh block of `readme` that contains curl."""
    blocks = re.findall(r"^```sh\n(.*?)^```", readme, flags=re.MULTILINE | re.DOTALL)
    block = next((b for b in blocks if re.search(r"\bcurl\b", b)), None)
    assert block is not None, "README.md has no ```sh block with curl commands"
    joined = re.sub(r"\\\n\s*", " ", block)  # continuation lines
    lines = [line.strip() for line in joined.splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    return [Step(number, command) for number, command in enumerate(commands, 1)]


@pytest.fixture
def demo_server(tmp_path: Path, database_url: str) -> Iterator[int]:
    """`dataset-worker demo` as `make run` starts it: state dir `.dataset-worker` of `tmp_path`."""
    port = free_port()
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "dataset_worker", "--state-dir", make_run_state_dir(),
               "--database-url", database_url, "demo", "--port", str(port), "--no-access-log"]  # fmt: skip
    with log.open("wb") as output:
        server = subprocess.Popen(
            command, cwd=tmp_path, env=env_without_token(), stdout=output, stderr=output
        )
    try:
        wait_answering(
            f"http://127.0.0.1:{port}/healthz", server, 60, "the demo", log=log.read_text
        )
        yield port
    finally:
        server.terminate()
        server.communicate(timeout=60)
        kill_worker(tmp_path / ".dataset-worker")


# Every curl reports its HTTP status on a line of its own; a streaming one is stopped in time.
PRELUDE = f"""
curl() {{
  local bound=()
  for arg in "$@"; do [ "$arg" = "-N" ] && bound=(--max-time {STREAM_SECONDS}); done
  command curl "${{bound[@]}}" -w '\\n@@status %{{http_code}}\\n' "$@"
}}
"""


def run_steps(steps: list[Step], port: int, cwd: Path) -> dict[int, tuple[int, list[int], str]]:
    """Run the steps in one bash (so variables carry over); (exit code, statuses, output) each."""
    script = [PRELUDE]
    for step in steps:
        script.append(f"echo '@@begin {step.number}'")
        script.append(step.command.replace(README_PORT, f"127.0.0.1:{port}"))
        script.append(f'echo "@@end {step.number} $?"')
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env_without_token(),
    )
    outcomes: dict[int, tuple[int, list[int], str]] = {}
    parts = re.findall(r"@@begin (\d+)\n(.*?)@@end \1 (\d+)\n", result.stdout, flags=re.DOTALL)
    for number, output, code in parts:
        statuses = [int(s) for s in re.findall(r"^@@status (\d+)$", output, flags=re.MULTILINE)]
        outcomes[int(number)] = (int(code), statuses, output)
    assert len(outcomes) == len(steps), result.stdout + result.stderr
    return outcomes


def test_readme_curl_walkthrough_runs_as_written(demo_server: int, tmp_path: Path) -> None:
    steps = walkthrough_steps(README.read_text())
    assert sum("curl" in step.command for step in steps) >= 5
    outcomes = run_steps(steps, demo_server, tmp_path)
    for step in steps:
        code, statuses, output = outcomes[step.number]
        where = f"step {step.number}: {step.command}\n{output}"
        if step.streams:
            assert code in (0, 28), where  # 28: stopped by --max-time, as intended
            assert "data:" in output, where  # the stream delivered events
        else:
            assert code == 0, where
        assert len(statuses) == step.command.count("curl "), where
        allowed = {409} if step.may_conflict else set()
        for status in statuses:
            assert 200 <= status < 300 or status in allowed, where


def test_the_conventions_are_read_from_the_block() -> None:
    readme = """
text
```sh
make run
```
```sh
H="x"; U=http://127.0.0.1:9090
curl -s $U/a      # list
curl -s -X POST $U/b \\
     -d '{}'       # 409 when it already runs
# a comment line
curl -N $U/c      # follow
```
"""
    steps = walkthrough_steps(readme)
    assert [s.command.split("#")[0].split() for s in steps] == [
        ['H="x";', "U=http://127.0.0.1:9090"],
        ["curl", "-s", "$U/a"],
        ["curl", "-s", "-X", "POST", "$U/b", "-d", "'{}'"],
        ["curl", "-N", "$U/c"],
    ]
    assert [(s.may_conflict, s.streams) for s in steps] == [
        (False, False),
        (False, False),
        (True, False),
        (False, True),
    ]
