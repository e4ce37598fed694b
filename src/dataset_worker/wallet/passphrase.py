"""Where the wallet passphrase comes from: the environment, else a prompt on the terminal.

Never from argv (other users can read a process's command line). Without the variable and
without a terminal (a service, CI) the error says which variable to set.
"""

from __future__ import annotations

import getpass
import os

from dataset_worker.config import ENV_WALLET_PASSPHRASE
from dataset_worker.wallet.keystore import WalletError


def wallet_passphrase(*, confirm: bool = False) -> str:
    """The passphrase from DATASET_WORKER_WALLET_PASSPHRASE, else typed on /dev/tty (twice
    with `confirm`, for a new wallet); WalletError if neither is possible or it is empty."""
    from_env = os.environ.get(ENV_WALLET_PASSPHRASE)
    if from_env is not None:
        if not from_env:
            raise WalletError(f"{ENV_WALLET_PASSPHRASE} is set but empty")
        return from_env
    if not _has_terminal():
        raise WalletError(
            f"no wallet passphrase: set {ENV_WALLET_PASSPHRASE} or run on a terminal to type it"
        )
    typed = getpass.getpass("Wallet passphrase: ")
    if not typed:
        raise WalletError("the wallet passphrase must not be empty")
    if confirm and getpass.getpass("Repeat the passphrase: ") != typed:
        raise WalletError("the two passphrases differ")
    return typed


def _has_terminal() -> bool:
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return False
