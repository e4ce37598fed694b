"""`dataset-worker wallet …` as a user runs it: the real CLI in a subprocess, a real state dir.

Keys are checked with libraries independent of wallet/ (eth-keys for 0x / f410, fidlabs'
filecoin-address for f1), and the key material is looked for where it must never be: other
files of the state dir, the database file, the commands' output and the process's argv.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from eth_keys.datatypes import PrivateKey as EthPrivateKey
from filecoin_address import delegated_from_eth_address
from filecoin_address.address_creation import new_secp256k1_address
from filecoin_address.enums import CoinType

PASS = "integration test passphrase"
ENV_PASS = "DATASET_WORKER_WALLET_PASSPHRASE"


def run(
    state: Path,
    *args: str,
    stdin: str | None = None,
    passphrase: str | None = PASS,
    new_session: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`dataset-worker --state-dir STATE ARGS`, with a permissive umask (0)."""
    env = {k: v for k, v in os.environ.items() if k != ENV_PASS}
    if passphrase is not None:
        env[ENV_PASS] = passphrase
    env.pop("DATASET_WORKER_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "dataset_worker", "--state-dir", str(state), *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        umask=0,
        start_new_session=new_session,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(result))


def f1_of(key: bytes, prefix: CoinType = CoinType.MAIN) -> str:
    """The f1 address of a key, by eth-keys (public key) and filecoin-address (encoding)."""
    pub = b"\x04" + EthPrivateKey(key).public_key.to_bytes()
    return new_secp256k1_address(pub, prefix).to_string()


def f410_of(key: bytes, prefix: CoinType = CoinType.MAIN) -> tuple[str, str]:
    eth = EthPrivateKey(key).public_key.to_checksum_address()
    return delegated_from_eth_address(eth, prefix), eth


def lotus_export(kind: str, key: bytes) -> str:
    return json.dumps({"Type": kind, "PrivateKey": base64.b64encode(key).decode()}).encode().hex()


def argv_of(pid: int) -> str:
    """/proc/PID/cmdline once the exec has filled it (empty for a moment after the fork)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        if "wallet" in cmdline:
            return cmdline
        time.sleep(0.01)  # polling with a deadline: no event tells when exec is done
    raise AssertionError(f"process {pid} never showed its argv")


KEYS = [bytes.fromhex(f"{i:02x}" * 32) for i in (0x11, 0x22, 0x33, 0x44, 0x55, 0x66)]


def test_create_list_show_export_delete(tmp_path: Path) -> None:
    state = tmp_path / "state"
    f1 = as_json(run(state, "wallet", "create", "--json"))
    f410 = as_json(
        run(state, "wallet", "create", "--type", "delegated", "--network", "calibnet", "--json")
    )
    assert f1["address"].startswith("f1") and f1["type"] == "secp256k1" and f1["ethAddress"] is None
    assert f410["address"].startswith("t410f") and f410["ethAddress"].startswith("0x")
    listed = as_json(run(state, "wallet", "list", "--json", passphrase=None))
    assert sorted(e["address"] for e in listed) == sorted([f1["address"], f410["address"]])
    assert (
        as_json(run(state, "wallet", "show", f410["ethAddress"], "--json", passphrase=None)) == f410
    )

    exported = ok(run(state, "wallet", "export", f1["address"], "--yes")).strip()
    info = json.loads(bytes.fromhex(exported))
    assert info["Type"] == "secp256k1"
    assert f1_of(base64.b64decode(info["PrivateKey"])) == f1["address"]  # the real key
    exported = ok(run(state, "wallet", "export", f410["address"], "--yes")).strip()
    key = base64.b64decode(json.loads(bytes.fromhex(exported))["PrivateKey"])
    assert f410_of(key, CoinType.TEST) == (f410["address"], f410["ethAddress"])

    refused = run(state, "wallet", "export", f1["address"])
    assert refused.returncode == 2 and "--yes" in refused.stderr and refused.stdout == ""

    wrong = run(state, "wallet", "delete", f1["address"], passphrase="not it")
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
    assert f"deleted {f1['address']}" in ok(run(state, "wallet", "delete", f1["address"]))
    listed = as_json(run(state, "wallet", "list", "--json"))
    assert [e["address"] for e in listed] == [f410["address"]]
    gone = run(state, "wallet", "show", f1["address"])
    assert gone.returncode == 1 and "no key for" in gone.stderr


@pytest.mark.parametrize("source", ["stdin", "file"])
def test_import_the_three_formats(tmp_path: Path, source: str) -> None:
    state = tmp_path / "state"
    cases = [
        (lotus_export("secp256k1", KEYS[0]), f1_of(KEYS[0]), "mainnet"),
        (lotus_export("delegated", KEYS[1]), f410_of(KEYS[1])[0], "mainnet"),
        (KEYS[2].hex() + "\n", f1_of(KEYS[2], CoinType.TEST), "calibnet"),
        ("0x" + KEYS[3].hex() + "\n", f410_of(KEYS[3], CoinType.TEST)[0], "calibnet"),
    ]
    for i, (text, address, network) in enumerate(cases):
        if source == "stdin":
            result = run(state, "wallet", "import", "--network", network, "--json", stdin=text)
        else:
            key_file = tmp_path / f"key{i}.txt"
            key_file.write_text(text)
            result = run(
                state, "wallet", "import", "--network", network, "--file", str(key_file), "--json"
            )
        assert as_json(result)["address"] == address
    again = run(state, "wallet", "import", stdin=cases[0][0])
    assert again.returncode == 1 and "already holds" in again.stderr
    bad = run(state, "wallet", "import", stdin="not a key")
    assert (
        bad.returncode == 1 and "unrecognised key" in bad.stderr and "not a key" not in bad.stderr
    )


def test_no_passphrase_and_no_terminal_names_the_variable(tmp_path: Path) -> None:
    result = run(tmp_path / "state", "wallet", "create", passphrase=None, new_session=True)
    assert result.returncode == 1 and ENV_PASS in result.stderr
    assert not (tmp_path / "state" / "wallet").exists() or not any(
        (tmp_path / "state" / "wallet").iterdir()
    )


def test_modes_whatever_the_umask(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ok(run(state, "wallet", "create"))
    ok(run(state, "wallet", "import", stdin=KEYS[4].hex()))
    wallet = state / "wallet"
    assert stat.S_IMODE(wallet.stat().st_mode) == 0o700
    files = list(wallet.iterdir())
    assert len(files) == 2
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)


def test_the_key_is_nowhere_but_encrypted(tmp_path: Path) -> None:
    state = tmp_path / "state"
    key = KEYS[5]
    forms = [
        key.hex(),
        key.hex().upper(),
        base64.b64encode(key).decode(),
        lotus_export("secp256k1", key),
    ]
    # A database in the same state dir (prep list creates the SQLite file).
    ok(run(state, "prep", "list", "--json"))
    database = state / "dataset-worker.db"
    assert database.is_file()

    # Import from stdin, reading the process's argv while it runs.
    env = {**os.environ, ENV_PASS: PASS}
    env.pop("DATASET_WORKER_DATABASE_URL", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dataset_worker",
            "--state-dir",
            str(state),
            "wallet",
            "import",
            "--json",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    cmdline = argv_of(process.pid)  # while it waits for the key on stdin
    out, err = process.communicate(lotus_export("secp256k1", key), timeout=120)
    assert process.returncode == 0, err
    address = json.loads(out)["address"]
    assert "wallet\0import" in cmdline  # it is the right process's argv

    outputs = [out, err, cmdline]
    for args in (("list",), ("show", address), ("create",), ("delete", address)):
        result = run(state, "wallet", *args)
        outputs += [ok(result), result.stderr]
    files = [p for p in state.rglob("*") if p.is_file()]
    assert database in files
    blobs = [p.read_bytes().decode("latin-1") for p in files]
    for form in forms:
        for text in outputs + blobs:
            assert form not in text


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("create", "--type", "bls"), 2, "--type must be one of secp256k1, delegated"),
        (("create", "--network", "devnet"), 2, "--network must be one of mainnet, calibnet"),
        (("show", "f1nope"), 1, "not an address"),
        (("import", "--file", "/nonexistent/key"), 1, "cannot read it"),
    ],
)
def test_usage_errors_name_the_rule(
    tmp_path: Path, args: tuple[str, ...], code: int, words: str
) -> None:
    result = run(tmp_path / "state", "wallet", *args)
    assert result.returncode == code and words in result.stderr, result.stderr


def test_an_empty_passphrase_variable_is_refused(tmp_path: Path) -> None:
    result = run(tmp_path / "state", "wallet", "create", passphrase="")
    assert result.returncode == 1 and f"{ENV_PASS} is set but empty" in result.stderr
