"""Filecoin addresses: parse, format and derive them (go-address, FIP-0048, FIP-0055).

The binary form is `protocol byte ‖ payload`. The string form is a network prefix (`f` mainnet,
`t` calibnet and other test networks), the protocol digit, then:

- protocol 0 (ID): the actor id in decimal (payload: its uvarint);
- protocols 1 (secp256k1), 2 (actor), 3 (BLS): base32-lower-nopad(payload ‖ checksum), where
  the checksum is blake2b-4 of the binary address;
- protocol 4 (delegated): the namespace in decimal, `f`, then base32(subaddress ‖ checksum);
  f410 addresses are namespace 10 (the Ethereum Address Manager) with a 20-byte Ethereum address.

A secp256k1 key's f1 payload is blake2b-160 of the 65-byte uncompressed public key; its f410
subaddress is the last 20 bytes of keccak-256 of that key without the 0x04 byte, which is the
key's Ethereum (0x) address.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from Crypto.Hash import keccak

from dataset_worker.content.base32 import b32_lower
from dataset_worker.content.varint import decode_uvarint, encode_uvarint

Network = Literal["mainnet", "calibnet"]
NETWORKS: tuple[Network, ...] = ("mainnet", "calibnet")
PREFIXES: dict[Network, str] = {"mainnet": "f", "calibnet": "t"}
ID, SECP256K1, ACTOR, BLS, DELEGATED = 0, 1, 2, 3, 4
EAM_NAMESPACE = 10  # FIP-0055: the Ethereum Address Manager
ID_MASK_PREFIX = b"\xff" + bytes(11)  # FIP-0055: 0xff00…00 ‖ 8-byte actor id is an f0 address
CHECKSUM_SIZE = 4
MAX_SUBADDRESS = 54  # go-address MaxSubaddressLen
MAX_INT63 = (1 << 63) - 1
_PAYLOAD_SIZES = {SECP256K1: 20, ACTOR: 20, BLS: 48}
_BASE32 = re.compile(r"[a-z2-7]*")
_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,18})")
_ETH = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(frozen=True, slots=True)
class Address:
    """A Filecoin address on one network: protocol 0 to 4 and the payload that follows it."""

    network: Network
    protocol: int
    payload: bytes

    def to_bytes(self) -> bytes:
        """The binary address: protocol byte ‖ payload."""
        return bytes((self.protocol,)) + self.payload

    def __str__(self) -> str:
        prefix = PREFIXES[self.network] + str(self.protocol)
        if self.protocol == ID:
            return prefix + str(decode_uvarint(self.payload)[0])
        if self.protocol == DELEGATED:
            namespace, at = decode_uvarint(self.payload)
            return f"{prefix}{namespace}f{b32_lower(self.payload[at:] + checksum(self.to_bytes()))}"
        return prefix + b32_lower(self.payload + checksum(self.to_bytes()))

    @property
    def eth_address(self) -> str | None:
        """The 0x form (EIP-55 mixed case) of an f410 address; None for any other address."""
        namespace, at = decode_uvarint(self.payload) if self.protocol == DELEGATED else (-1, 0)
        if namespace != EAM_NAMESPACE or len(self.payload) - at != 20:
            return None
        return to_checksum_eth(self.payload[at:])

    def on(self, network: Network) -> Address:
        """The same address on another network (only the prefix changes)."""
        return Address(network, self.protocol, self.payload)


def checksum(address_bytes: bytes) -> bytes:
    """The 4-byte blake2b checksum of a binary address."""
    return hashlib.blake2b(address_bytes, digest_size=CHECKSUM_SIZE).digest()


def keccak256(data: bytes) -> bytes:
    """Ethereum's keccak-256 (not NIST SHA3-256, which pads differently)."""
    return keccak.new(data=data, digest_bits=256).digest()


def secp256k1_address(public_key: bytes, network: Network = "mainnet") -> Address:
    """The f1/t1 address of a 65-byte uncompressed secp256k1 public key."""
    _check_uncompressed(public_key)
    return Address(network, SECP256K1, hashlib.blake2b(public_key, digest_size=20).digest())


def delegated_address(public_key: bytes, network: Network = "mainnet") -> Address:
    """The f410/t410 address of a 65-byte uncompressed secp256k1 public key (its 0x address
    under the Ethereum Address Manager)."""
    _check_uncompressed(public_key)
    return eth_to_delegated(keccak256(public_key[1:])[-20:], network)


def eth_to_delegated(eth: bytes, network: Network = "mainnet") -> Address:
    """The f410/t410 address of a 20-byte Ethereum address."""
    if len(eth) != 20:
        raise ValueError(f"an Ethereum address is 20 bytes, got {len(eth)}")
    return Address(network, DELEGATED, encode_uvarint(EAM_NAMESPACE) + eth)


def to_checksum_eth(eth: bytes) -> str:
    """EIP-55 mixed-case hex of a 20-byte Ethereum address."""
    hexed = eth.hex()
    digest = keccak256(hexed.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if int(d, 16) >= 8 else c
        for c, d in zip(hexed, digest[: len(hexed)], strict=True)
    )


def parse_address(s: str, network: Network | None = None) -> Address:
    """An Address from its string form (f…/t…, or 0x… for an f410 address on `network`, mainnet
    by default). ValueError names the rule that `s` breaks; `network`, when given, must match."""
    text = s.strip()
    if _ETH.fullmatch(text):
        if (
            text != text.lower()
            and text != text.upper()
            and to_checksum_eth(bytes.fromhex(text[2:])) != text
        ):
            raise ValueError(f"{s!r}: bad EIP-55 checksum (the mixed-case letters are wrong)")
        eth = bytes.fromhex(text[2:])
        if eth.startswith(ID_MASK_PREFIX):  # FIP-0055: an actor id in Ethereum form
            actor = int.from_bytes(eth[12:], "big")
            if actor > MAX_INT63:
                raise ValueError(f"{s!r}: an ID-masked address holds an actor id below 2^63")
            return Address(network or "mainnet", ID, encode_uvarint(actor))
        return eth_to_delegated(eth, network or "mainnet")
    if text.startswith("0x"):
        raise ValueError(f"{s!r}: a 0x address is 0x followed by 40 hex digits")
    if len(text) < 3:
        raise ValueError(f"{s!r} is too short for an address (network, protocol, payload)")
    found = {v: k for k, v in PREFIXES.items()}.get(text[0])
    if found is None:
        raise ValueError(f"{s!r}: an address starts with f (mainnet) or t (calibnet)")
    if network is not None and found != network:
        raise ValueError(f"{s!r} is a {found} address, not a {network} one")
    if not text[1].isdigit() or int(text[1]) > DELEGATED:
        raise ValueError(f"{s!r}: unknown protocol {text[1]!r} (0 to 4)")
    protocol, rest = int(text[1]), text[2:]
    if protocol == ID:
        if not _DECIMAL.fullmatch(rest) or int(rest) > MAX_INT63:
            raise ValueError(f"{s!r}: an ID address is a decimal actor id below 2^63")
        return Address(found, ID, encode_uvarint(int(rest)))
    if protocol == DELEGATED:
        return _parse_delegated(s, found, rest)
    payload = _decode_checked(s, rest, bytes((protocol,)), _PAYLOAD_SIZES[protocol])
    return Address(found, protocol, payload)


def _parse_delegated(s: str, network: Network, rest: str) -> Address:
    namespace_text, sep, encoded = rest.partition("f")
    if not sep or not _DECIMAL.fullmatch(namespace_text) or int(namespace_text) > MAX_INT63:
        raise ValueError(f"{s!r}: a delegated address is f4<namespace>f<base32>")
    prefix = encode_uvarint(int(namespace_text))
    sub = _decode_checked(s, encoded, bytes((DELEGATED,)) + prefix, None)
    if len(sub) > MAX_SUBADDRESS:
        raise ValueError(f"{s!r}: a subaddress is at most {MAX_SUBADDRESS} bytes, got {len(sub)}")
    if int(namespace_text) == EAM_NAMESPACE and len(sub) != 20:
        raise ValueError(f"{s!r}: an f410 subaddress is a 20-byte Ethereum address")
    return Address(network, DELEGATED, prefix + sub)


def _decode_checked(s: str, text: str, head: bytes, size: int | None) -> bytes:
    """Payload of `text` (base32 of payload ‖ checksum), of `size` bytes when given, its
    checksum checked over head ‖ payload."""
    if not _BASE32.fullmatch(text):
        raise ValueError(f"{s!r}: the payload is lower-case base32 (a-z, 2-7)")
    try:
        raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except ValueError:
        raise ValueError(f"{s!r}: the payload is not valid base32") from None
    if len(raw) < CHECKSUM_SIZE or (size is not None and len(raw) <= CHECKSUM_SIZE):
        raise ValueError(f"{s!r}: too short for a payload and its 4-byte checksum")
    if b32_lower(raw) != text:  # non-canonical trailing bits
        raise ValueError(f"{s!r}: the payload is not canonical base32")
    payload, given = raw[:-CHECKSUM_SIZE], raw[-CHECKSUM_SIZE:]
    if size is not None and len(payload) != size:
        raise ValueError(f"{s!r}: a protocol {head[0]} payload is {size} bytes, got {len(payload)}")
    if checksum(head + payload) != given:
        raise ValueError(f"{s!r}: bad checksum (a mistyped character?)")
    return payload


def _check_uncompressed(public_key: bytes) -> None:
    if len(public_key) != 65 or public_key[0] != 4:
        raise ValueError("a secp256k1 public key here is 65 bytes, uncompressed (0x04 ‖ x ‖ y)")
