"""The client wallet as a `Signer` (auth.py), its key read from the project's keystore.

The passphrase comes from DATASET_WORKER_WALLET_PASSPHRASE, or is typed on a terminal by a
command (never a command-line argument, which any local user can read in /proc/PID/cmdline);
the key stays in this object's memory and is never logged, printed or stored in the database.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dataset_worker.deals.errors import WalletUnavailable


class WalletSigner:
    """A secp256k1 wallet: address string and bytes, and a signing function."""

    __slots__ = ("_address", "_address_bytes", "_sign")

    def __init__(self, address: str, address_bytes: bytes, sign: Callable[[bytes], bytes]) -> None:
        self._address = address
        self._address_bytes = address_bytes
        self._sign = sign

    @property
    def address(self) -> str:
        """The address string (sent as the deal's `client`)."""
        return self._address

    @property
    def address_bytes(self) -> bytes:
        """The address bytes (the CurioAuth header's second part)."""
        return self._address_bytes

    def sign(self, message: bytes) -> bytes:
        """65-byte r‖s‖v over blake2b-256(message)."""
        return self._sign(message)

    def __repr__(self) -> str:
        return f"WalletSigner({self._address})"


def load_signer(state_dir: Path, address: str, passphrase: str | None = None) -> WalletSigner:
    """The signer of `address` from the keystore in `state_dir` (WalletUnavailable if it is not
    there or cannot be opened)."""
    from dataset_worker.wallet.address import parse_address
    from dataset_worker.wallet.keystore import Keystore
    from dataset_worker.wallet.passphrase import wallet_passphrase
    from dataset_worker.wallet.sign import sign_secp256k1

    try:
        parsed = parse_address(address)
    except ValueError as exc:
        raise WalletUnavailable(f"--wallet: {exc}") from exc
    if parsed.protocol != 1:
        raise WalletUnavailable(
            f"--wallet {address}: deals are signed with secp256k1 wallets (f1…/t1…) only"
        )
    try:
        key = Keystore(state_dir, passphrase or wallet_passphrase()).get_private_key(parsed)
    except Exception as exc:  # the keystore's own errors: missing entry, wrong passphrase
        raise WalletUnavailable(f"wallet {address}: {exc}") from exc

    def sign(message: bytes) -> bytes:
        return sign_secp256k1(key, message)

    return WalletSigner(str(parsed), parsed.to_bytes(), sign)
