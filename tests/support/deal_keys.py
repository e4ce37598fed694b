"""A secp256k1 test key as a deals `Signer`, made with coincurve directly (independent of the
wallet package, so the stand-in's checks and ours meet only on the wire)."""

from __future__ import annotations

import hashlib

from coincurve import PrivateKey

from tests.support.curio_sp import f1_address


def _blake2b256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


class KeySigner:
    """A Signer over a raw private key."""

    def __init__(self, secret: bytes, network: str = "f") -> None:
        self._key = PrivateKey(secret)
        payload = hashlib.blake2b(
            self._key.public_key.format(compressed=False), digest_size=20
        ).digest()
        self._address = f1_address(network, payload)
        self._bytes = b"\x01" + payload

    @property
    def address(self) -> str:
        return self._address

    @property
    def address_bytes(self) -> bytes:
        return self._bytes

    def sign(self, message: bytes) -> bytes:
        return self._key.sign_recoverable(message, hasher=_blake2b256)


def key_signer(seed: int = 1, network: str = "f") -> KeySigner:
    """A deterministic test key."""
    return KeySigner(hashlib.sha256(f"deal test key {seed}".encode()).digest(), network)
