"""The S3 listing reorder buffer and the version check, without a server."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataset_worker.storage import SourceChangedError, StorageError
from dataset_worker.storage.s3 import MAX_PARTS, _Identity, _Listed, _mtime_ns, _NameOrder
from dataset_worker.storage.s3client import Backoff
from dataset_worker.storage.s3config import DEFAULT_PART_SIZE, S3Config, parse_s3_url

# Characters around "/" (0x2F) make S3's key order and name order disagree.
NAMES = st.text(alphabet="!+,-.0/az\u00e9", min_size=1, max_size=6).filter(lambda n: "/" not in n)


@settings(max_examples=300, deadline=None)
@given(files=st.sets(NAMES, max_size=12), dirs=st.sets(NAMES, max_size=12))
def test_reorder_turns_key_order_into_name_order(files: set[str], dirs: set[str]) -> None:
    items = [_Listed(n.encode(), n.encode(), False, n, None) for n in files]
    items += [_Listed(n.encode(), n.encode() + b"/", True, n, None) for n in dirs]
    items.sort(key=lambda item: item.key)  # what S3 sends
    order = _NameOrder()
    out: list[_Listed] = []
    for item in items:
        out.extend(order.push(item))
    out.extend(order.flush())
    assert [(i.name, i.is_dir) for i in out] == sorted(
        ((i.name, i.is_dir) for i in items), key=lambda pair: pair[0]
    )
    # Same name: the file (key "n") is yielded before the folder (key "n/").
    for a, b in pairwise(out):
        if a.name == b.name:
            assert not a.is_dir and b.is_dir


def test_reorder_holds_only_what_can_still_move() -> None:
    order = _NameOrder()
    assert [i.name for i in order.push(_Listed(b"a-b", b"a-b", False, "a-b", None))] == []
    released = [i.name for i in order.push(_Listed(b"a", b"a/", True, "a", None))]
    assert released == [b"a", b"a-b"]
    assert [i.name for i in order.push(_Listed(b"b", b"b", False, "b", None))] == [b"b"]


def test_version_check() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    scanned = _Identity(10, _mtime_ns(when), "etag1")
    assert _mtime_ns(when) == 1_767_323_045_600_000_000
    scanned.check("s3://b/k", 10, when.replace(microsecond=0), "etag1")  # truncated HTTP date
    scanned.check("s3://b/k", 10, datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC), "etag1")  # rounded
    for size, second, etag, what in [
        (11, 5, "etag1", "size 10 -> 11"),
        (10, 5, "etag2", "ETag etag1 -> etag2"),
        (10, 9, "etag1", "modified 2026-01-02T03:04:05"),
    ]:
        with pytest.raises(SourceChangedError, match=f"source changed: s3://b/k .*{what}"):
            scanned.check("s3://b/k", size, when.replace(second=second), etag)


def test_paths_configs_and_backoff() -> None:
    assert parse_s3_url("s3://bucket/a/b/").url() == "s3://bucket/a/b"
    assert parse_s3_url("s3://bucket").root == ""
    assert parse_s3_url("s3://bucket/p").root == "p/"
    for bad in ("bucket/x", "s3:///x", "s3://b/a/../c"):
        with pytest.raises(StorageError):
            parse_s3_url(bad)
    config = S3Config.from_mapping({"anonymous": "true", "part_size": "16777216"})
    assert config.anonymous and config.part_size == 16 << 20
    pair = {"access_key_id": "AKIA", "secret_access_key": "TOPSECRET"}
    secret = S3Config.from_mapping(pair, allow_secrets=True)
    assert "TOPSECRET" not in repr(secret)
    for half in ({"secret_access_key": "TOPSECRET"}, {"session_token": "T"}):
        with pytest.raises(StorageError, match="needs"):  # boto3 would refuse it later
            S3Config.from_mapping(half, allow_secrets=True)
    assert DEFAULT_PART_SIZE * MAX_PARTS >= 31.5 * (1 << 30)  # the largest CAR fits
    delays = list(Backoff(attempts=6, base=0.1, cap=1.0).delays())
    assert len(delays) == 5
    assert all(min(1.0, 0.1 * 2**n) / 2 <= d <= min(1.0, 0.1 * 2**n) for n, d in enumerate(delays))
