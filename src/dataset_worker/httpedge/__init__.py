"""The HTTP edge shared by the admin server (`api/`) and the content provider (`provider/`).

One bearer-token check and its rules (`auth.py`), one error body and the handlers that give every
error that shape (`errors.py`; a 500 carries only a request id), the OpenAPI trim (`openapi.py`)
and the security headers (`headers.py`). It imports nothing of the project but the helpers, so
the content provider gets it without loading the admin server's layers.
"""
