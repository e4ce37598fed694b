"""The reply to GET or HEAD /piece/{pieceCid} once the piece is open: conditional requests
first (304), then the Range header (206 single or multipart, 416), else the whole piece (200)."""

from __future__ import annotations

from starlette.responses import Response

from dataset_worker.content.cid import cid_to_str
from dataset_worker.httpedge.errors import error_response
from dataset_worker.provider.pieces import CheckedPieceReader, PieceReader, PieceRecord
from dataset_worker.provider.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    http_date,
    if_range_allows,
    not_modified,
    parse_range,
)
from dataset_worker.provider.response import (
    CAR_MEDIA_TYPE,
    PieceResponse,
    Span,
    multipart_segments,
    new_boundary,
)


def piece_reply(
    method: str,
    record: PieceRecord,
    reader: PieceReader,
    range_header: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
    if_range: str | None,
) -> Response:
    """The status, headers and body of one piece request; the reply closes `reader`."""
    cid_text = cid_to_str(record.piece_cid)
    etag = f'"{cid_text}"'
    headers = {
        "accept-ranges": "bytes",
        "etag": etag,
        "last-modified": http_date(record.created_at),
        "content-disposition": f'attachment; filename="{cid_text}.car"',
        "cache-control": "public, max-age=29030400, immutable",  # bytes of a CID never change
    }
    if not_modified(etag, record.created_at, if_none_match, if_modified_since):
        reader.close()
        return Response(status_code=304, headers=headers)
    ranges = None
    if if_range_allows(if_range, etag, record.created_at):
        try:
            ranges = parse_range(range_header, reader.size)
        except RangeNotSatisfiable as exc:
            reader.close()
            return _not_satisfiable(str(exc), reader.size)
    if isinstance(reader, CheckedPieceReader):
        # Before the status line: a changed source file is a 409, not a broken transfer.
        spans = [(0, reader.size)] if ranges is None else [(r.start, r.length) for r in ranges]
        reader.check_spans(spans)
    return _bytes_reply(headers, reader, ranges, send_body=method != "HEAD")


def _bytes_reply(
    headers: dict[str, str],
    reader: PieceReader,
    ranges: list[ByteRange] | None,
    *,
    send_body: bool,
) -> Response:
    """200 with the whole piece, 206 with one range, or 206 multipart/byteranges."""
    size = reader.size
    if ranges is None or len(ranges) == 1:
        headers["content-type"] = CAR_MEDIA_TYPE
        span = Span(0, size)
        status = 200
        if ranges is not None:
            headers["content-range"] = ranges[0].content_range(size)
            span, status = Span(ranges[0].start, ranges[0].length), 206
        return PieceResponse(status, headers, reader, [span], send_body=send_body)
    boundary = new_boundary()
    headers["content-type"] = f"multipart/byteranges; boundary={boundary}"
    segments = multipart_segments(ranges, size, boundary)
    return PieceResponse(206, headers, reader, segments, send_body=send_body)


def _not_satisfiable(reason: str, size: int) -> Response:
    response = error_response(416, f"Range not satisfiable: {reason}")
    response.headers["content-range"] = f"bytes */{size}"
    response.headers["accept-ranges"] = "bytes"
    return response
