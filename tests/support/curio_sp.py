"""A storage provider stand-in that speaks Curio's Market 2.0 (mk20) HTTP API on 127.0.0.1.

Its wire format comes from Curio's own files (tests/support/curio/README.md), never from our
client: it serves `POST /market/mk20/deal`, `GET /market/mk20/status/{id}`, `GET …/products` and
`GET …/sources`; it validates every deal body against the vendored swagger.json; it checks the
`CurioAuth` header as Curio's market/mk20/auth.go does (sha256 of address bytes ‖ METHOD ‖
escaped path ‖ RFC 3339 minute, the previous, current and next minute accepted; the secp256k1
public key recovered from the signature over blake2b-256 of that digest, turned into an f1/t1
address and compared with the header's address bytes and the deal's `client`); it applies
Curio's deal rules that do not need a chain (utils.go, ddo_v1.go, retrieval_v1.go); and after
answering 200 it downloads the piece from the deal's URLs and checks the PieceCID v2 against the
bytes (commP of the bytes, lifted to the tree height the CID carries, and the padding), then
reports the deal `complete` (or `failed` with the reason) on its status route.

Tests can arm faults for the next deal POSTs: answer 429 (with Retry-After), 500, 503, a
rejection with a reason, or a timeout (the deal is stored, the answer comes too late).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import ipaddress
import json
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
from coincurve import PublicKey

from dataset_worker.content.commp import CommP, natural_piece_size, pad_commp

SWAGGER = Path(__file__).parent / "curio" / "swagger.json"
PREFIX = "/market/mk20"
MIN_DURATION = 518400
ULID_RE = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
B32 = "abcdefghijklmnopqrstuvwxyz234567"


# -- swagger -----------------------------------------------------------------------------------


def deal_validator() -> jsonschema.Draft4Validator:
    """A validator of mk20.Deal from swagger.json, with swaggo's two artefacts corrected and
    unknown fields refused (see curio/README.md)."""
    document = json.loads(SWAGGER.read_text())
    definitions = copy.deepcopy(document["definitions"])
    definitions["address.Address"] = {"type": "string", "pattern": "^[ft][0-4][a-z0-9]+$"}
    alloc = "github_com_filecoin-project_go-state-types_builtin_v16_verifreg.AllocationId"
    definitions[alloc] = {"type": "integer", "minimum": 1}
    for name, schema in definitions.items():
        if name.startswith("mk20.") and schema.get("type") == "object":
            schema["additionalProperties"] = False
            schema.setdefault("properties", {})
    body_ref = document["paths"]["/deal"]["post"]["parameters"][0]["schema"]["$ref"]
    return jsonschema.Draft4Validator({"$ref": body_ref, "definitions": definitions})


# -- addresses, CIDs ---------------------------------------------------------------------------


def b32(data: bytes) -> str:
    """RFC 4648 base32, lower case, no padding (Filecoin addresses and multibase 'b')."""
    bits = int.from_bytes(data, "big") if data else 0
    nbits = len(data) * 8
    out = []
    for shift in range(nbits - 5, -5, -5):
        out.append(B32[(bits >> shift) & 31] if shift >= 0 else B32[(bits << -shift) & 31])
    return "".join(out)


def b32_decode(text: str) -> bytes:
    """Inverse of b32."""
    value, nbits = 0, 0
    for char in text:
        value = (value << 5) | B32.index(char)
        nbits += 5
    extra = nbits % 8
    return (value >> extra).to_bytes(nbits // 8, "big")


def f1_address(network: str, payload: bytes) -> str:
    """The secp256k1 address string of a 20-byte payload (protocol 1)."""
    checksum = hashlib.blake2b(b"\x01" + payload, digest_size=4).digest()
    return f"{network}1{b32(payload + checksum)}"


def read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of an unsigned varint."""
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


@dataclass(frozen=True)
class PieceV2:
    """A decoded PieceCID v2 (FRC-0069): padding, tree height and root."""

    padding: int
    height: int
    root: bytes

    @property
    def piece_size(self) -> int:
        return 32 << self.height

    @property
    def payload_size(self) -> int:
        return self.piece_size // 128 * 127 - self.padding


def decode_piece_cid_v2(text: str) -> PieceV2:
    """ValueError unless `text` is a CIDv1, raw codec, fr32-sha256-trunc254-padbintree digest."""
    if not text.startswith("b"):
        raise ValueError("piece cid is not base32 multibase")
    data = b32_decode(text[1:])
    version, pos = read_uvarint(data, 0)
    codec, pos = read_uvarint(data, pos)
    code, pos = read_uvarint(data, pos)
    length, pos = read_uvarint(data, pos)
    digest = data[pos:]
    if version != 1 or codec != 0x55:
        raise ValueError("piece cid is not raw")
    if code != 0x1011 or length != len(digest):
        raise ValueError("piece cid is not a v2 piece cid (multihash 0x1011)")
    padding, at = read_uvarint(digest, 0)
    if len(digest) - at != 33:
        raise ValueError("piece cid v2 digest has the wrong length")
    return PieceV2(padding, digest[at], digest[at + 1 :])


# -- the SP ------------------------------------------------------------------------------------


@dataclass
class StoredDeal:
    """A deal the SP accepted."""

    body: dict[str, Any]
    client: str
    status: str = "accepted"
    error: str = ""


@dataclass
class Received:
    """One request as the SP saw it."""

    method: str
    path: str
    status: int
    identifier: str | None = None
    piece_cid: str | None = None


@dataclass
class CurioStandIn:
    """State and knobs of the stand-in (shared with its request handler threads)."""

    network: str = "f"
    download: bool = True
    # Curio's default SSRF policy (lib/robusthttp/ssrf.go) refuses piece URLs whose host is a
    # loopback or private IP literal; tests serve pieces on 127.0.0.1, as an SP that allows it.
    allow_private_urls: bool = True
    deals: dict[str, StoredDeal] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    faults: list[tuple[str, float]] = field(default_factory=list)
    validation_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)
    url: str = ""

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)
        self.validator = deal_validator()

    # knobs

    def arm(self, fault: str, times: int = 1, seconds: float = 0.0) -> None:
        """Answer the next `times` deal POSTs with `fault`: "429", "500", "503", "reject" or
        "timeout" (store the deal, answer after `seconds`)."""
        with self.lock:
            self.faults.extend([(fault, seconds)] * times)

    def posts(self) -> list[Received]:
        """Every deal POST received so far."""
        with self.lock:
            return [r for r in self.received if r.method == "POST"]

    def wait_for(self, predicate: Any, timeout: float = 60.0) -> None:
        """Wait until predicate(self) is true (under the lock) or fail."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the SP stand-in did not reach the expected state")
                self.changed.wait(left)

    # auth (market/mk20/auth.go)

    def authenticate(self, header: str | None, method: str, path: str) -> str | None:
        """The client address string when the header is valid, else None."""
        if not header or not header.startswith("CurioAuth "):
            return None
        parts = header[len("CurioAuth ") :].split(":", 2)
        if len(parts) != 3 or parts[0] != "secp256k1":
            return None
        try:
            addr = base64.b64decode(parts[1], validate=True)
            sig = base64.b64decode(parts[2], validate=True)
        except ValueError:
            return None
        if len(addr) != 21 or addr[0] != 1 or len(sig) != 66 or sig[0] != 1:
            return None
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        for offset in (0, -1, 1):
            stamp = (now + timedelta(minutes=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")
            digest = hashlib.sha256(
                addr + method.upper().encode() + path.encode() + stamp.encode()
            ).digest()
            try:
                key = PublicKey.from_signature_and_message(
                    sig[1:], digest, hasher=lambda m: hashlib.blake2b(m, digest_size=32).digest()
                )
            except Exception:
                continue
            payload = hashlib.blake2b(key.format(compressed=False), digest_size=20).digest()
            if payload == addr[1:]:
                return f1_address(self.network, payload)
        return None

    # deal rules (utils.go, ddo_v1.go, retrieval_v1.go)

    def check_deal(self, deal: dict[str, Any], client: str) -> tuple[int, str]:
        if not ULID_RE.fullmatch(str(deal.get("identifier", ""))):
            return 400, "invalid identifier"
        if deal.get("client") != client:
            return 400, "client in deal does not match client in auth header"
        products = deal.get("products") or {}
        ddo, retrieval = products.get("ddo_v1"), products.get("retrieval_v1")
        if ddo is None:
            return 425, "no products defined"
        if retrieval is None:
            return 425, "retrieval v1 is required for ddo v1"
        if retrieval.get("announce_piece"):
            return 425, "announce piece is not supported for ddo v1"
        if retrieval.get("announce_payload") and not retrieval.get("indexing"):
            return 425, "deal cannot be announced to IPNI without indexing"
        if not ddo.get("provider"):
            return 425, "provider address is not set"
        if ddo.get("start_epoch") is not None and ddo["start_epoch"] <= 0:
            return 425, "start epoch cannot be negative"
        if ddo.get("allocation_id") is None and int(ddo.get("duration", 0)) < MIN_DURATION:
            return 441, "duration must be at least 518400"
        data = deal.get("data")
        if data is None:
            return 400, "Data Source must be defined for a DDO deal"
        try:
            decode_piece_cid_v2(data["piece_cid"]["/"])
        except (KeyError, ValueError, IndexError) as exc:
            return 400, f"invalid piece cid: {exc}"
        sources = [
            k
            for k in ("source_http", "source_offline", "source_aggregate", "source_http_put")
            if k in data
        ]
        if len(sources) != 1:
            return 400, "exactly one source must be defined"
        if list(data.get("format", {})) != ["car"]:
            return 400, "format must be car"
        urls = data["source_http"]["urls"]
        if not 1 <= len(urls) <= 10:
            return 430, "between 1 and 10 urls must be given"
        for item in urls:
            host = urllib.parse.urlsplit(item["url"]).hostname or ""
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                continue  # a DNS name: Curio checks it when it dials
            if not self.allow_private_urls and (
                ip.is_loopback or ip.is_private or ip.is_link_local
            ):
                return 400, f"invalid url: non-public ip {ip} is not allowed"
        return 200, ""

    # downloads

    def fetch_and_verify(self, identifier: str) -> None:
        with self.lock:
            deal = self.deals[identifier]
        data = deal.body["data"]
        piece = decode_piece_cid_v2(data["piece_cid"]["/"])
        error = "no url worked"
        for item in sorted(data["source_http"]["urls"], key=lambda u: u["priority"]):
            try:
                error = self._verify_url(item["url"], piece)
            except Exception as exc:
                error = f"{item['url']}: {exc}"
            if not error:
                break
        with self.changed:
            deal.status, deal.error = ("complete", "") if not error else ("failed", error)
            self.changed.notify_all()

    def _verify_url(self, url: str, piece: PieceV2) -> str:
        calc, size = CommP(), 0
        with urllib.request.urlopen(url, timeout=60) as reply:
            while chunk := reply.read(1 << 20):
                calc.update(chunk)
                size += len(chunk)
        if size != piece.payload_size:
            return f"{url}: {size} bytes, the piece cid says {piece.payload_size}"
        result = calc.digest()
        natural = natural_piece_size(size)
        if piece.piece_size < natural:
            return f"{url}: the piece cid's tree is too small for {size} bytes"
        root = pad_commp(result.commitment, natural, piece.piece_size)
        if root != piece.root:
            return f"{url}: commP of the bytes does not match the piece cid"
        return ""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY the second waits for the
    # client's delayed ACK (40 ms a request on Linux), as no Go server would make it wait.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(
        self,
        status: int,
        text: str = "",
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _note(self, status: int, identifier: str | None = None, piece: str | None = None) -> None:
        sp = self.server.sp
        with sp.changed:
            sp.received.append(Received(self.command, self.path, status, identifier, piece))
            sp.changed.notify_all()

    def do_GET(self) -> None:
        sp = self.server.sp
        path = self.path.split("?", 1)[0]
        client = sp.authenticate(self.headers.get("Authorization"), "GET", path)
        if client is None:
            self._note(401)
            return self._reply(401, "Unauthorized\n")
        if path == f"{PREFIX}/products":
            self._note(200)
            return self._reply(
                200, json.dumps({"products": ["ddo_v1", "retrieval_v1"]}), "application/json"
            )
        if path == f"{PREFIX}/sources":
            self._note(200)
            return self._reply(200, json.dumps({"sources": ["http"]}), "application/json")
        if path.startswith(f"{PREFIX}/status/"):
            identifier = path.rsplit("/", 1)[1]
            with sp.lock:
                deal = sp.deals.get(identifier)
            # auth.go: a deal id in the path must belong to the authenticated client.
            if deal is None or deal.client != client:
                self._note(401, identifier)
                return self._reply(401, "Unauthorized\n")
            self._note(200, identifier)
            status = {"ddo_v1": {"status": deal.status, "errorMsg": deal.error}}
            return self._reply(200, json.dumps(status), "application/json")
        self._note(404)
        self._reply(404, "404 page not found\n")

    def do_POST(self) -> None:
        sp = self.server.sp
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if path != f"{PREFIX}/deal":
            self._note(404)
            return self._reply(404, "404 page not found\n")
        client = sp.authenticate(self.headers.get("Authorization"), "POST", path)
        if client is None:
            self._note(401)
            return self._reply(401, "Unauthorized\n")
        if self.headers.get("Content-Type") != "application/json":
            self._note(400)
            return self._reply(400, "invalid content type\n")
        try:
            deal = json.loads(raw)
        except ValueError as exc:
            self._note(400)
            return self._reply(400, f"{exc}\n")
        problems = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in sp.validator.iter_errors(deal)
        ]
        if problems:
            with sp.lock:
                sp.validation_errors.extend(problems)
            self._note(400)
            return self._reply(400, "; ".join(problems) + "\n")
        identifier = deal["identifier"]
        piece = deal.get("data", {}).get("piece_cid", {}).get("/")
        with sp.lock:
            fault = sp.faults.pop(0) if sp.faults else None
        if fault is not None:
            kind, seconds = fault
            if kind == "timeout":
                stored = self._store(deal, client)
                self._note(200 if stored else 500, identifier, piece)
                time.sleep(seconds)  # the stand-in's fault: the answer comes too late
                return self._reply(200 if stored else 500, "Reason: ")
            status = {"429": 429, "500": 500, "503": 503, "reject": 426}[kind]
            reason = {
                429: "Reason: service overloaded",
                500: "Reason: Internal server error",
                503: "Reason: service maintenance",
                426: "Reason: Deal rejected by market: test rejection",
            }[status]
            self._note(status, identifier, piece)
            headers = {"Retry-After": str(int(seconds))} if status in (429, 503) else None
            return self._reply(status, reason, headers=headers)
        code, reason = sp.check_deal(deal, client)
        if code != 200:
            self._note(code, identifier, piece)
            return self._reply(code, f"Reason: {reason}")
        if not self._store(deal, client):
            # Curio: the second insert of one id fails in its database.
            self._note(500, identifier, piece)
            return self._reply(500, "Reason: ")
        self._note(200, identifier, piece)
        self._reply(200, "Reason: ")

    def _store(self, deal: dict[str, Any], client: str) -> bool:
        sp = self.server.sp
        identifier = deal["identifier"]
        with sp.changed:
            if identifier in sp.deals:
                return False
            sp.deals[identifier] = StoredDeal(deal, client)
            sp.changed.notify_all()
        if sp.download:
            threading.Thread(target=sp.fetch_and_verify, args=(identifier,), daemon=True).start()
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # kept-alive client connections must not hold up the shutdown

    def __init__(self, sp: CurioStandIn) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.sp = sp


@contextmanager
def curio_sp(network: str = "f", *, download: bool = True) -> Iterator[CurioStandIn]:
    """A running stand-in on a free loopback port; `.url` is its base URL."""
    sp = CurioStandIn(network=network, download=download)
    server = _Server(sp)
    sp.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sp
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
