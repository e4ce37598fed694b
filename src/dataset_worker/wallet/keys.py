"""secp256k1 key pairs and the address each kind of wallet key has.

Two kinds: `secp256k1` (an f1/t1 address) and `delegated` (the same curve, an f410/t410 address
whose 0x form is the key's Ethereum address), as Lotus names them in its KeyInfo.
"""

from __future__ import annotations

from typing import Literal

from dataset_worker.wallet.address import (
    Address,
    Network,
    delegated_address,
    secp256k1_address,
)

KeyKind = Literal["secp256k1", "delegated"]
KINDS: tuple[KeyKind, ...] = ("secp256k1", "delegated")
PRIVATE_KEY_SIZE = 32


def new_private_key() -> bytes:
    """32 random bytes that form a valid secp256k1 private key."""
    from coincurve import PrivateKey

    return bytes(PrivateKey().secret)


def public_key(private_key: bytes) -> bytes:
    """The 65-byte uncompressed public key; ValueError if the key is not a valid scalar."""
    from coincurve import PrivateKey

    if len(private_key) != PRIVATE_KEY_SIZE:
        raise ValueError(f"a secp256k1 private key is 32 bytes, got {len(private_key)}")
    try:
        key = PrivateKey(private_key)
    except ValueError:
        raise ValueError(
            "not a valid secp256k1 private key (zero, or not below the curve order)"
        ) from None
    return bytes(key.public_key.format(compressed=False))


def address_of(private_key: bytes, kind: KeyKind, network: Network) -> Address:
    """The address of a key of this kind on this network."""
    pub = public_key(private_key)
    if kind == "secp256k1":
        return secp256k1_address(pub, network)
    return delegated_address(pub, network)
