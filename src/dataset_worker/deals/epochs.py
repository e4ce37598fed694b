"""Filecoin chain epochs from the wall clock: one epoch every 30 s since the network's genesis.

Without a chain node, `--start-epoch-offset` needs the current height; it follows from the
genesis time of the network the client address belongs to (f… mainnet, t… calibration net).
"""

from __future__ import annotations

import time

EPOCH_SECONDS = 30
MAINNET_GENESIS = 1_598_306_400  # 2020-08-24T22:00:00Z
CALIBNET_GENESIS = 1_667_326_380  # 2022-11-01T18:13:00Z


def current_epoch(client_address: str, now: float | None = None) -> int:
    """The chain height now on the client's network."""
    genesis = CALIBNET_GENESIS if client_address.startswith("t") else MAINNET_GENESIS
    return int(((time.time() if now is None else now) - genesis) // EPOCH_SECONDS)
