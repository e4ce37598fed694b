"""The JSON body of `POST /market/mk20/deal`: Curio's `mk20.Deal` (market/mk20/types.go).

Field names and shapes follow types.go, ddo_v1.go and retrieval_v1.go exactly:

- `piece_cid` is a go-cid JSON link, `{"/": "<PieceCID v2>"}`;
- `format` holds exactly one of `car`, `aggregate`, `raw` (here `car: {}`);
- `source_http.urls[]` items are `{url, headers, priority, fallback}` (headers: Go's http.Header,
  a map of string lists);
- `products.ddo_v1` carries `provider` (an address string), `duration` (epochs, at least 518400
  unless an allocation is given), and the optional `start_epoch` and `allocation_id`; optional
  fields are left out rather than sent as null, which Go decodes the same way (nil pointers);
- a DDO deal needs `products.retrieval_v1` (`indexing`, `announce_payload`, `announce_piece`,
  the last one false for DDO; announcing the payload needs indexing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIN_DURATION = 518_400  # epochs (180 days): Curio's minimum without an allocation
MAX_URLS = 10  # Curio's maxURLCount
PRODUCT_DDO_V1 = "ddo_v1"
PRODUCTS = (PRODUCT_DDO_V1,)


@dataclass(frozen=True)
class DealTerms:
    """What one deal asks of the provider, apart from the piece."""

    provider: str
    client: str
    duration: int
    start_epoch: int | None = None
    allocation_id: int | None = None
    indexing: bool = True
    announce_payload: bool = True
    product: str = PRODUCT_DDO_V1


def deal_body(
    identifier: str, piece_cid_v2: str, urls: list[str], terms: DealTerms
) -> dict[str, Any]:
    """The mk20.Deal JSON object for one piece."""
    ddo: dict[str, Any] = {"provider": terms.provider, "duration": terms.duration}
    if terms.start_epoch is not None:
        ddo["start_epoch"] = terms.start_epoch
    if terms.allocation_id is not None:
        ddo["allocation_id"] = terms.allocation_id
    return {
        "identifier": identifier,
        "client": terms.client,
        "data": {
            "piece_cid": {"/": piece_cid_v2},
            "format": {"car": {}},
            "source_http": {
                "urls": [
                    {"url": url, "headers": {}, "priority": index, "fallback": index > 0}
                    for index, url in enumerate(urls)
                ]
            },
        },
        "products": {
            PRODUCT_DDO_V1: ddo,
            "retrieval_v1": {
                "indexing": terms.indexing,
                "announce_payload": terms.announce_payload,
                "announce_piece": False,
            },
        },
    }
