"""The daggen job: the directory tree as one DAG piece whose CAR root is the root CID."""
