"""The OpenAI wire format: errors, server-sent events, token counts, usage, request validation
and which headers cross the gateway in each direction.

Pure: no I/O and no clock (ids come from `secrets`). Imports only the standard library, orjson,
toktok-rs (the o200k_base vocabulary, compiled in) and itself, so the simulated upstream can
share it with the gateway.
"""
