"""Filecoin wallets: addresses (f1/t1, f410/t410 and 0x), secp256k1 signatures and an encrypted
key store in the state dir. Keys never go in the database: this layer never imports `db/`."""
