"""The encrypted key store: round trips, one passphrase per wallet, modes, tamper detection."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataset_worker.wallet.formats import lotus_export, parse_key_text
from dataset_worker.wallet.keys import address_of, new_private_key
from dataset_worker.wallet.keystore import (
    KeyExists,
    KeyNotFound,
    Keystore,
    WalletError,
    WrongPassphrase,
)

PASS = "correct horse battery staple"


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_create_get_export_delete(tmp_path: Path) -> None:
    store = Keystore(tmp_path, PASS)
    entry = store.create("secp256k1", "calibnet")
    assert entry.address.startswith("t1") and entry.kind == "secp256k1"
    key = store.get_private_key(entry.address)
    assert str(address_of(key, "secp256k1", "calibnet")) == entry.address
    exported = store.export(entry.address)
    assert parse_key_text(exported).private_key == key
    assert [e.address for e in store.list()] == [entry.address]
    assert store.delete(entry.address) == entry
    assert store.list() == []
    with pytest.raises(KeyNotFound):
        store.get_private_key(entry.address)


def test_delegated_keys_are_found_by_their_0x_form(tmp_path: Path) -> None:
    store = Keystore(tmp_path, PASS)
    key = new_private_key()
    entry = store.import_key(key, "delegated", "calibnet")
    assert entry.address.startswith("t410f") and entry.eth_address is not None
    assert store.get_private_key(entry.eth_address) == key
    assert store.get_private_key(entry.eth_address.lower()) == key
    assert json.loads(bytes.fromhex(store.export(entry.address)))["Type"] == "delegated"


def test_the_key_is_not_in_the_file_in_clear(tmp_path: Path) -> None:
    store = Keystore(tmp_path, PASS)
    key = new_private_key()
    entry = store.import_key(key)
    raw = (tmp_path / "wallet" / f"{entry.address}.key").read_bytes()
    for form in (key.hex().encode(), key, lotus_export("secp256k1", key).encode()):
        assert form not in raw
    assert b"scrypt" in raw and b"aes-256-gcm" in raw


def test_wrong_passphrase_and_one_passphrase_per_wallet(tmp_path: Path) -> None:
    entry = Keystore(tmp_path, PASS).create()
    other = Keystore(tmp_path, "another passphrase")
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        other.get_private_key(entry.address)
    with pytest.raises(WrongPassphrase, match="same one"):
        other.create()
    with pytest.raises(WrongPassphrase):
        other.delete(entry.address)
    assert other.list() == [entry]  # listing needs no passphrase


def test_duplicate_import_and_empty_passphrase(tmp_path: Path) -> None:
    store = Keystore(tmp_path, PASS)
    key = new_private_key()
    store.import_key(key)
    with pytest.raises(KeyExists, match="already holds"):
        store.import_key(key)
    store.import_key(key, "delegated")  # the same key as an f410 address is another entry
    assert len(store.list()) == 2
    with pytest.raises(WalletError, match="must not be empty"):
        Keystore(tmp_path / "other", "").create()


def test_a_file_renamed_to_another_address_does_not_open(tmp_path: Path) -> None:
    store = Keystore(tmp_path, PASS)
    a, b = store.create(), store.create()
    path_a = tmp_path / "wallet" / f"{a.address}.key"
    record = json.loads(path_a.read_text())
    record["address"] = b.address  # claim b's address with a's sealed key
    (tmp_path / "wallet" / f"{b.address}.key").write_text(json.dumps(record))
    with pytest.raises(WrongPassphrase, match="altered"):
        store.get_private_key(b.address)
    with pytest.raises(WalletError, match="not a wallet key file"):
        (tmp_path / "wallet" / f"{a.address}.key").write_text("{")
        store.list()
    record["address"] = "f1nonsense"
    (tmp_path / "wallet" / f"{a.address}.key").write_text(json.dumps(record))
    with pytest.raises(WalletError, match="not a wallet key file"):
        store.show(a.address)


def test_modes_are_0700_and_0600_whatever_the_umask(tmp_path: Path, permissive_umask: None) -> None:
    (tmp_path / "wallet").mkdir(mode=0o777)
    store = Keystore(tmp_path, PASS)
    entry = store.create()
    store.create("delegated")
    assert stat.S_IMODE((tmp_path / "wallet").stat().st_mode) == 0o700
    files = list((tmp_path / "wallet").iterdir())
    assert len(files) == 2 and f"{entry.address}.key" in {f.name for f in files}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_bad_addresses_are_refused(tmp_path: Path) -> None:
    with pytest.raises(WalletError, match="not an address"):
        Keystore(tmp_path, PASS).get_private_key("f1nope")
