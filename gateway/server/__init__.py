"""The ASGI edge: where HTTP meets the gateway, and the only package that subclasses or steps
around Starlette's and uvicorn's internals.

`protocol` is uvicorn's httptools protocol with a tick's writes joined; `fast_path` takes
`POST /v1/chat/completions` past Starlette's router; `recording` keeps the per-request record
in the scope and finishes it; `intake` identifies the caller and reads the body;
`stream_response` streams an answer from the request's own task and notices a client that
leaves. Imports runtime, teams, wire and (for types) admission. Other packages use only
Starlette's public request, response and routing classes, and cli runs uvicorn with `protocol`;
pyproject pins both libraries to the tested versions because of this package.
"""
