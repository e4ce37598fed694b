"""The admin server: the FastAPI app that starts, stops and watches the dataset worker and
manages preparations (routes under `routes/`, auth, body limit, error mapping, metrics)."""
