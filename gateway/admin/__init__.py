"""The admin API under /admin: teams, their keys and their usage, for operators and the
`o1-gateway teams|keys|usage` commands.

`api` is the Starlette router behind the admin key; `openapi` describes it as OpenAPI 3.1 (a
plain dict, pure); `memory_note` marks its answers when the store is in the gateway's memory. Reaches Redis only through the running gateway's team store and admission.
Imports config, wire, teams, admission and server (the caller and the body).
"""
