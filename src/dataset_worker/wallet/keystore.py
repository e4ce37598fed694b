"""Wallet keys encrypted at rest in the state dir: <state dir>/wallet/<address>.key.

Each file is JSON: the address, the key kind and network in clear (so `list` needs no
passphrase), and the 32-byte private key sealed with AES-256-GCM under a key derived from the
passphrase by scrypt (salt per file). The clear fields are the AEAD's associated data, so a file
renamed or edited to claim another address fails to open. The folder is mode 0700 and each file
0600, set explicitly whatever the umask. Keys never go in the database, logs or argv.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataset_worker.wallet.address import NETWORKS, Address, Network, parse_address
from dataset_worker.wallet.formats import lotus_export
from dataset_worker.wallet.keys import KINDS, KeyKind, address_of, new_private_key

WALLET_DIR = "wallet"
SUFFIX = ".key"
FILE_VERSION = 1
DIR_MODE = 0o700
FILE_MODE = 0o600
# scrypt at 2^15 · 8 · 128 B = 32 MiB and about 0.1 s: OWASP's minimum for interactive use.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1
SALT_SIZE, NONCE_SIZE = 16, 12


class WalletError(Exception):
    """A wallet operation failed; the message says why (and never holds key material)."""


class KeyNotFound(WalletError):
    """No key for that address in the wallet."""


class KeyExists(WalletError):
    """The wallet already holds a key for that address."""


class WrongPassphrase(WalletError):
    """The passphrase does not open the key (or the file was altered)."""


@dataclass(frozen=True, slots=True)
class WalletEntry:
    """One key of the wallet as `list` shows it: no secret in it."""

    address: str
    kind: KeyKind
    network: Network
    eth_address: str | None  # the 0x form of a delegated key

    def to_json(self) -> dict[str, Any]:
        """The JSON form of `wallet list` and `wallet show`."""
        return {
            "address": self.address,
            "type": self.kind,
            "network": self.network,
            "ethAddress": self.eth_address,
        }


class Keystore:
    """The encrypted keys under <state dir>/wallet, opened with one passphrase."""

    def __init__(self, state_dir: Path, passphrase: str) -> None:
        self.dir = Path(state_dir) / WALLET_DIR
        self._passphrase = passphrase.encode("utf-8")

    def create(self, kind: KeyKind = "secp256k1", network: Network = "mainnet") -> WalletEntry:
        """A new random key of this kind, stored; its entry."""
        return self.import_key(new_private_key(), kind, network)

    def import_key(
        self, private_key: bytes, kind: KeyKind = "secp256k1", network: Network = "mainnet"
    ) -> WalletEntry:
        """Store an existing 32-byte key; KeyExists if its address is already here."""
        if kind not in KINDS:
            raise WalletError(f"unknown key type {kind!r}: expected one of {list(KINDS)}")
        if not self._passphrase:
            raise WalletError("the wallet passphrase must not be empty")
        try:
            address = address_of(private_key, kind, network)
        except ValueError as exc:
            raise WalletError(str(exc)) from None
        self._check_passphrase_fits_existing()
        header = {"version": FILE_VERSION, "address": str(address), "type": kind}
        header["network"] = network
        self._write_new(self._path(str(address)), self._seal(header, private_key))
        return _entry(header)

    def list(self) -> list[WalletEntry]:
        """Every key of the wallet, by address (reads no secret)."""
        if not self.dir.is_dir():
            return []
        return [_entry(self._header(path)) for path in sorted(self.dir.glob("*" + SUFFIX))]

    def show(self, address: str | Address) -> WalletEntry:
        """One key's entry (no passphrase needed); KeyNotFound if it is not here."""
        return _entry(self._header(self._find(address)))

    def get_private_key(self, address: str | Address) -> bytes:
        """The 32-byte private key of `address`; KeyNotFound, WrongPassphrase."""
        return self._open(self._find(address))[1]

    def export(self, address: str | Address) -> str:
        """The key in Lotus `wallet export` form (hex of the KeyInfo JSON)."""
        header, key = self._open(self._find(address))
        return lotus_export(header["type"], key)

    def delete(self, address: str | Address) -> WalletEntry:
        """Remove a key (the passphrase must open it first); its entry."""
        path = self._find(address)
        header, _key = self._open(path)
        path.unlink()
        return _entry(header)

    # --- files ------------------------------------------------------------------------------

    def _path(self, address: str) -> Path:
        return self.dir / (address + SUFFIX)

    def _find(self, address: str | Address) -> Path:
        """The file of `address` (a 0x address: its f410 or t410 key, whichever is here)."""
        if isinstance(address, str):
            try:
                parsed = parse_address(address)
            except ValueError as exc:
                raise WalletError(f"not an address: {exc}") from None
            networks = NETWORKS if address.strip().startswith("0x") else (parsed.network,)
        else:
            parsed, networks = address, (address.network,)
        for network in networks:
            path = self._path(str(parsed.on(network)))
            if path.is_file():
                return path
        raise KeyNotFound(f"no key for {address} in the wallet ({self.dir})")

    def _header(self, path: Path) -> dict[str, Any]:
        try:
            record = json.loads(path.read_text("utf-8"))
            header = {k: record[k] for k in ("version", "address", "type", "network")}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WalletError(f"{path}: not a wallet key file ({exc})") from None
        if header["version"] != FILE_VERSION or header["type"] not in KINDS:
            raise WalletError(f"{path}: unknown key file version or key type")
        if header["network"] not in NETWORKS or not isinstance(header["address"], str):
            raise WalletError(f"{path}: not a wallet key file (bad network or address)")
        try:
            parse_address(header["address"], header["network"])
        except ValueError as exc:
            raise WalletError(f"{path}: not a wallet key file ({exc})") from None
        if header["address"] + SUFFIX != path.name:
            raise WalletError(f"{path}: the file says it holds {header['address']}")
        return header

    def _ensure_dir(self) -> None:
        self.dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(self.dir, DIR_MODE)  # mkdir's mode is cut by the umask; an old dir may be wider

    def _write_new(self, path: Path, record: dict[str, Any]) -> None:
        """Write `record` to `path` with mode 0600; KeyExists if the path is taken."""
        self._ensure_dir()
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                fd = -1
                json.dump(record, stream, indent=1)
                stream.write("\n")
                stream.flush()
                os.fsync(stream.fileno())
            try:
                os.link(temp, path)  # fails if the name exists: never overwrite a key
            except FileExistsError:
                raise KeyExists(f"the wallet already holds {record['address']}") from None
        finally:
            if fd >= 0:
                os.close(fd)
            temp.unlink(missing_ok=True)

    # --- crypto -----------------------------------------------------------------------------

    def _seal(self, header: dict[str, Any], private_key: bytes) -> dict[str, Any]:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        salt, nonce = secrets.token_bytes(SALT_SIZE), secrets.token_bytes(NONCE_SIZE)
        sealed = AESGCM(self._derive(salt)).encrypt(nonce, private_key, _aad(header))
        return {
            **header,
            "kdf": {
                "name": "scrypt",
                "n": SCRYPT_N,
                "r": SCRYPT_R,
                "p": SCRYPT_P,
                "salt": _b64(salt),
            },
            "cipher": {"name": "aes-256-gcm", "nonce": _b64(nonce)},
            "ciphertext": _b64(sealed),
        }

    def _open(self, path: Path) -> tuple[dict[str, Any], bytes]:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        header = self._header(path)
        try:
            record = json.loads(path.read_text("utf-8"))
            kdf, cipher = record["kdf"], record["cipher"]
            if kdf["name"] != "scrypt" or cipher["name"] != "aes-256-gcm":
                raise ValueError("unknown kdf or cipher")
            key = self._derive(_unb64(kdf["salt"]), kdf["n"], kdf["r"], kdf["p"])
            sealed, nonce = _unb64(record["ciphertext"]), _unb64(cipher["nonce"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WalletError(f"{path}: damaged key file ({exc})") from None
        try:
            private_key = AESGCM(key).decrypt(nonce, sealed, _aad(header))
        except InvalidTag:
            raise WrongPassphrase(
                f"wrong passphrase for {header['address']} (or its key file was altered)"
            ) from None
        if str(address_of(private_key, header["type"], header["network"])) != header["address"]:
            raise WalletError(f"{path}: the key does not match the address {header['address']}")
        return header, private_key

    def _derive(
        self, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P
    ) -> bytes:
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(self._passphrase)

    def _check_passphrase_fits_existing(self) -> None:
        """One passphrase per wallet: a new key must be sealed with the one the others use."""
        existing = sorted(self.dir.glob("*" + SUFFIX)) if self.dir.is_dir() else []
        if existing:
            try:
                self._open(existing[0])
            except WrongPassphrase:
                raise WrongPassphrase(
                    "the passphrase does not open the keys already in the wallet; use the same one"
                ) from None


def _entry(header: dict[str, Any]) -> WalletEntry:
    address = parse_address(header["address"])
    return WalletEntry(str(address), header["type"], address.network, address.eth_address)


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(
        [header["version"], header["address"], header["type"], header["network"]]
    ).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
