"""Independent read-back of prepared pieces: CAR framing, block hashes, piece CIDs, files.

`car` checks one CAR, `tree` rebuilds files from the DAG, `preparation` runs both over a whole
preparation and `report` holds the findings. Nothing here imports the code that wrote the CARs.
"""
