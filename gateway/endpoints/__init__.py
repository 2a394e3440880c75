"""What each OpenAI endpoint does: chat completions first, then models and the generic
pass-through; the Responses API and the other endpoint families go here too.

Imports everything below it (server, runtime, upstream, admission, compat, routing, wire, config)
and Starlette's request and response classes; nothing imports it but the composition root
(`gateway.app`). Its I/O goes through those layers.
"""
