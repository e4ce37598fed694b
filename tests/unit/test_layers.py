"""The layer rules: the contracts and the doc's table agree with scripts/layers.py, every module
is in a layer, late uses are really late, and a forbidden import (direct or through another
layer) breaks the contracts. `make lint` runs lint-imports on the real tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scripts import layers

SRC = Path(layers.ROOT) / "src" / layers.PACKAGE
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_the_contracts_and_the_doc_are_generated_from_the_table() -> None:
    assert layers.stale() == [], "run .venv/bin/python scripts/layers.py --write"
    assert layers.main(["--check"]) == 0


def _modules() -> list[str]:
    found = []
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append(".".join(parts))
    return sorted(found)


def test_every_module_is_in_exactly_one_layer() -> None:
    homes: dict[str, list[str]] = {}
    for module in _modules():
        if module == layers.PACKAGE:
            continue  # the package itself holds only __version__
        homes[module] = [
            layer.key
            for layer in layers.LAYERS
            for top in layer.modules
            if module == top or module.startswith(top + ".")
        ]
    homeless = [module for module, keys in homes.items() if len(keys) != 1]
    assert homeless == [], "add these to a Layer of scripts/layers.py (then --write)"


def _loaded_after_import(module: str) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded


LATE = [
    (layer.key, use.layer, entry)
    for layer in layers.LAYERS
    for use in layer.uses
    for entry in use.late
]


@pytest.mark.parametrize(("layer", "used", "entry"), LATE, ids=[f"{x[0]}-{x[1]}" for x in LATE])
def test_a_late_use_is_not_loaded_by_importing_its_entry(layer: str, used: str, entry: str) -> None:
    loaded = _loaded_after_import(entry)
    assert entry in loaded  # the import itself happened
    targets = layers.by_key()[used].modules
    early = [m for m in loaded if any(m == t or m.startswith(t + ".") for t in targets)]
    assert early == [], f"importing {entry} loads {used}/ at module level"


def test_the_content_provider_loads_nothing_of_the_admin_server() -> None:
    loaded = _loaded_after_import("dataset_worker.provider.app")
    admin = ("api", "manager", "prep", "worker", "cli", "storage")
    of_admin = [m for m in loaded if m.startswith("dataset_worker.") and m.split(".")[1] in admin]
    assert of_admin == []
    assert "boto3" not in loaded and "paramiko" not in loaded


def _copy_tree(tmp_path: Path) -> Path:
    """A copy of the package's Python files and the contracts, to break without touching the
    real tree."""
    src = tmp_path / "src"
    shutil.copytree(SRC, src / layers.PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copy(layers.CONFIG, tmp_path / ".importlinter")
    return src


def _lint(tmp_path: Path, src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "200"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_forbidden_import_breaks_the_contracts_directly_and_through_other_layers(
    tmp_path: Path,
) -> None:
    src = _copy_tree(tmp_path)
    clean = _lint(tmp_path, src)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 broken" in clean.stdout

    # The HTTP edge (below both servers) reaching into the manager: httpedge/'s own contract
    # breaks, and so does the content provider's, through the edge module it imports.
    edge = src / layers.PACKAGE / "httpedge" / "errors.py"
    edge.write_text(edge.read_text() + "\nfrom dataset_worker.manager import errors as _leak\n")
    broken = _lint(tmp_path, src)
    print(broken.stdout)  # the demonstration, for -s
    assert broken.returncode == 1
    lines = broken.stdout.splitlines()
    assert "`httpedge/` imports helpers, directly or not BROKEN" in lines
    provider = next(line for line in lines if line.startswith("`provider/` imports"))
    assert provider.endswith("BROKEN")
    report = broken.stdout.split(provider, 1)[1]
    assert "dataset_worker.provider is not allowed to import dataset_worker.manager" in report
    assert "-> dataset_worker.httpedge.errors" in report  # the chain, through the edge
    assert "dataset_worker.httpedge.errors -> dataset_worker.manager.errors" in report
    assert any(line.startswith("Contracts: ") and line.endswith(" 2 broken.") for line in lines)
