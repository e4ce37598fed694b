"""Job bodies (scan, pack, daggen) and what they share: attachment loading, bulk inserts, CAR-size
estimates, piece writing and directory upkeep. No job imports another job's package."""
