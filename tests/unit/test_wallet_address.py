"""Filecoin addresses: published vectors, an independent Python library, and eth-keys for f410.

The secp256k1 and delegated vectors are copied (data only) from filecoin-project/go-address,
address_test.go at commit 4e4546cbe9330f356acf8514c7e86f1ef0871118 (TestVectorSecp256k1Address,
TestDelegatedAddress, TestInvalidStringAddresses).
"""

from __future__ import annotations

import filecoin_address as fa
import pytest
from eth_keys.datatypes import PrivateKey as EthPrivateKey
from filecoin_address.address_creation import new_secp256k1_address
from hypothesis import given, settings
from hypothesis import strategies as st

from dataset_worker.wallet.address import (
    DELEGATED,
    SECP256K1,
    Address,
    delegated_address,
    parse_address,
    secp256k1_address,
)
from dataset_worker.wallet.keys import address_of, public_key

# go-address TestVectorSecp256k1Address: (uncompressed public key, mainnet address); the keys are
# its decimal byte lists written in hex.
GO_SECP_VECTORS = [
    (
        bytes.fromhex(
            "049402fac37e6432a416a3a0ca5426b5185ab3b24f6134efa25ce487c82d2e4e"
            "13bf452511e0d2245421f8613bc10d72fa216666a96c3bc13920d3ff233fd0bc05"
        ),
        "f15ihq5ibzwki2b4ep2f46avlkrqzhpqgtga7pdrq",
    ),
    (
        bytes.fromhex(
            "047687b910379bf28cbe3aea674b12000c6b7dba46ffc05f6c94fe2a22bbcc26"
            "02ff7f5c76f21ca55d36959152b0e1e887917c393576eef093f61ebd3ad06f7fda"
        ),
        "f12fiakbhe2gwd5cnmrenekasyn6v5tnaxaqizq6a",
    ),
    (
        bytes.fromhex(
            "0442832bf87cce9ea345b90350de7d3495859ca449059c5e88dde74285dffb9e"
            "c01ebabc5fc86268cfeaeba7ae05bfb8d68eb75a5268782cf86fc8702bef8a1fe0"
        ),
        "f17uoq6tp427uzv7fztkbsnn64iwotfrristwpryy",
    ),
]
# go-address TestDelegatedAddress, and addresses of other protocols from its vectors.
GO_OTHER_VECTORS = [
    "f432f77777777x32lpna",
    "f49223372036854775807fiic6zsy",
    "t24vg6ut43yw2h2jqydgbg2xq7x6f4kub3bg6as6i",
    "t3s2q2hzhkpiknjgmf4zq3ejab2rh62qbndueslmsdzervrhapxr7dftie4kpnpdiv2n6tvkr743ndhrsw6d3a",
    "f01024",
]
# go-address TestInvalidStringAddresses and TestInvalidByteAddresses' encoding case.
GO_INVALID = [
    ("Q2gfvuyh7v2sx3patm5k23wdzmhyhtmqctasbr23y", "starts with f"),
    ("t5gfvuyh7v2sx3patm5k23wdzmhyhtmqctasbr23y", "unknown protocol"),
    ("t2gfvuyh7v2sx3patm5k23wdzmhyhtmqctasbr24y", "checksum"),
    ("t0banananananannnnnnnnn", "decimal actor id"),
    ("t2gfvuyh7v2sx3patm1k23wdzmhyhtmqctasbr24y", "base32"),
    ("t2gfvuyh7v2sx3paTm1k23wdzmhyhtmqctasbr24y", "base32"),
    ("t2", "too short"),
    ("t1234q", "too short"),
    ("t1" + "a" * 39, "checksum"),
    ("t1" + "a" * 40, "20 bytes"),
    ("f1xpbyy4tkdx5si2bgo37dubc2xwv6fum5tk57mid", "canonical"),
    (str(Address("mainnet", DELEGATED, b"\x0a" + bytes(19))), "20-byte Ethereum"),
    ("f4f" + "a" * 10, "f4<namespace>f<base32>"),
    ("0x123", "40 hex digits"),
    ("0x7E5F4552091A69125d5DfCb7b8C2659029395BDF", "EIP-55"),
]
KEY = bytes(31) + b"\x01"  # private key 1: its Ethereum address is well known
ETH_OF_KEY_1 = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"


@pytest.mark.parametrize(("pub", "expected"), GO_SECP_VECTORS)
def test_go_address_secp256k1_vectors(pub: bytes, expected: str) -> None:
    assert str(secp256k1_address(pub)) == expected
    assert str(secp256k1_address(pub, "calibnet")) == "t" + expected[1:]
    parsed = parse_address(expected)
    assert parsed == Address("mainnet", SECP256K1, parsed.payload)
    assert parsed.to_bytes() == b"\x01" + parsed.payload and len(parsed.payload) == 20


@pytest.mark.parametrize("text", GO_OTHER_VECTORS)
def test_go_address_round_trips(text: str) -> None:
    assert str(parse_address(text)) == text


def test_to_bytes_agrees_with_the_independent_library() -> None:
    for text in [v for _, v in GO_SECP_VECTORS] + GO_OTHER_VECTORS:
        assert parse_address(text).to_bytes() == fa.new_from_string(text).bytes


@pytest.mark.parametrize(("text", "rule"), GO_INVALID)
def test_invalid_addresses_name_the_rule(text: str, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        parse_address(text)


def test_network_must_match_when_asked() -> None:
    with pytest.raises(ValueError, match="mainnet address, not a calibnet"):
        parse_address("f01024", "calibnet")


@settings(max_examples=40, deadline=None)
@given(secret=st.binary(min_size=32, max_size=32))
def test_derivation_matches_independent_libraries(secret: bytes) -> None:
    try:
        pub = public_key(secret)
    except ValueError:
        return  # zero or above the curve order: not a key
    # f1: filecoin-address (fidlabs) on the same public key.
    assert str(secp256k1_address(pub)) == new_secp256k1_address(pub).to_string()
    # f410 / 0x: eth-keys derives the Ethereum address from the private key on its own.
    eth = EthPrivateKey(secret).public_key.to_checksum_address()
    delegated = delegated_address(pub, "calibnet")
    assert delegated.protocol == DELEGATED and delegated.eth_address == eth
    assert str(delegated) == fa.delegated_from_eth_address(eth, fa.CoinType.TEST)
    assert parse_address(eth, "calibnet") == delegated == parse_address(eth.lower(), "calibnet")


def test_an_id_masked_eth_address_is_the_id_address() -> None:
    # FIP-0055: 0xff, eleven zero bytes, then the actor id (big-endian): an f0 address.
    assert str(parse_address("0xff" + "00" * 11 + (1024).to_bytes(8, "big").hex())) == "f01024"


def test_well_known_key_one() -> None:
    delegated = address_of(KEY, "delegated", "mainnet")
    assert delegated.eth_address == ETH_OF_KEY_1
    assert str(delegated) == "f410fpzpukuqjdjurexk57s33rqtfsautsw67fn6pl5q"
    assert str(parse_address(ETH_OF_KEY_1)) == str(delegated)
    assert address_of(KEY, "secp256k1", "mainnet").eth_address is None


def test_bad_private_keys() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        public_key(b"\x01" * 31)
    with pytest.raises(ValueError, match="not a valid secp256k1 private key"):
        public_key(bytes(32))
