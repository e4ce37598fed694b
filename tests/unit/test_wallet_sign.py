"""Filecoin secp256k1 signatures: the signer is recovered by paths independent of sign.py."""

from __future__ import annotations

import hashlib

import pytest
from coincurve import PublicKey
from eth_keys.datatypes import PrivateKey as EthPrivateKey
from eth_keys.datatypes import Signature as EthSignature
from filecoin_address.address_creation import new_secp256k1_address

from dataset_worker.wallet.address import secp256k1_address
from dataset_worker.wallet.keys import address_of, new_private_key
from dataset_worker.wallet.sign import recover_public_key, serialise, sign_secp256k1

MESSAGE = b"a Filecoin message's CBOR bytes, or anything else to sign"


def test_signature_recovers_the_signer_with_coincurve() -> None:
    key = new_private_key()
    signature = sign_secp256k1(key, MESSAGE)
    assert len(signature) == 65 and signature[64] in (0, 1)
    digest = hashlib.blake2b(MESSAGE, digest_size=32).digest()
    pub = PublicKey.from_signature_and_message(signature, digest, hasher=None)
    recovered = pub.format(compressed=False)
    assert new_secp256k1_address(recovered).to_string() == str(
        address_of(key, "secp256k1", "mainnet")
    )
    assert str(secp256k1_address(recover_public_key(signature, MESSAGE))) == str(
        address_of(key, "secp256k1", "mainnet")
    )
    assert serialise(signature) == b"\x01" + signature


def test_signature_recovers_the_signer_with_eth_keys() -> None:
    key = new_private_key()
    signature = sign_secp256k1(key, MESSAGE)
    digest = hashlib.blake2b(MESSAGE, digest_size=32).digest()
    # eth-keys takes the same r ‖ s ‖ v layout (v = 0 or 1) and a prehashed message.
    recovered = EthSignature(signature).recover_public_key_from_msg_hash(digest)
    assert recovered == EthPrivateKey(key).public_key


def test_signature_is_over_blake2b_not_sha256() -> None:
    key = new_private_key()
    signature = sign_secp256k1(key, MESSAGE)
    wrong = PublicKey.from_signature_and_message(
        signature, hashlib.sha256(MESSAGE).digest(), hasher=None
    )
    assert wrong.format(compressed=False) != recover_public_key(signature, MESSAGE)


def test_a_changed_message_recovers_someone_else() -> None:
    key = new_private_key()
    signature = sign_secp256k1(key, MESSAGE)
    assert recover_public_key(signature, MESSAGE + b"!") != recover_public_key(signature, MESSAGE)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        sign_secp256k1(b"\x01" * 33, MESSAGE)
    with pytest.raises(ValueError, match="65 bytes"):
        recover_public_key(b"\x00" * 64, MESSAGE)
    with pytest.raises(ValueError, match="recovery id"):
        recover_public_key(b"\x01" * 64 + b"\x07", MESSAGE)
