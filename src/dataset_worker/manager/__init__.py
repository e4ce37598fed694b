"""The worker-process manager: spawn through a log pump, stop (TERM → grace → KILL), status,
bounded logs, audit. Kept free of heavy imports: the log pump imports from this package."""
