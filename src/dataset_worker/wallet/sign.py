"""Filecoin secp256k1 signatures: ECDSA over blake2b-256 of the message, 65 bytes r ‖ s ‖ v.

v is the recovery id (0 or 1), so the signer's public key, and so its address, can be recovered
from the signature and the message. Serialised in a Filecoin message the signature is preceded
by its type byte, 1 (SIG_TYPE_SECP256K1).
"""

from __future__ import annotations

import hashlib

SIG_TYPE_SECP256K1 = 1
SIGNATURE_SIZE = 65


def message_digest(message: bytes) -> bytes:
    """blake2b-256 of the message: what a Filecoin secp256k1 signature signs."""
    return hashlib.blake2b(message, digest_size=32).digest()


def sign_secp256k1(private_key: bytes, message: bytes) -> bytes:
    """The 65-byte recoverable signature (r ‖ s ‖ recovery id) of blake2b-256(message)."""
    from coincurve import PrivateKey

    if len(private_key) != 32:
        raise ValueError(f"a secp256k1 private key is 32 bytes, got {len(private_key)}")
    return bytes(PrivateKey(private_key).sign_recoverable(message_digest(message), hasher=None))


def recover_public_key(signature: bytes, message: bytes) -> bytes:
    """The 65-byte uncompressed public key that made `signature` over `message`; ValueError if
    the signature is malformed."""
    from coincurve import PublicKey

    if len(signature) != SIGNATURE_SIZE:
        raise ValueError(f"a secp256k1 signature is {SIGNATURE_SIZE} bytes, got {len(signature)}")
    if signature[64] > 3:
        raise ValueError(f"the recovery id (last byte) is 0 to 3, got {signature[64]}")
    try:
        key = PublicKey.from_signature_and_message(signature, message_digest(message), hasher=None)
    except Exception as exc:  # coincurve raises a bare Exception for a bad signature
        raise ValueError(f"not a valid secp256k1 signature: {exc}") from None
    return bytes(key.format(compressed=False))


def serialise(signature: bytes) -> bytes:
    """The signature as a Filecoin message carries it: type byte 1, then the 65 bytes."""
    return bytes((SIG_TYPE_SECP256K1,)) + signature
