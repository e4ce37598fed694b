"""Storage deals with storage providers over Curio's Market 2.0 HTTP API (docs/deals.md).

Layer: may import `content/`, `db/`, `wallet/` and the top-level helpers; never `api/`, `cli/`,
`manager/`, `prep/` or `worker/`.
"""
