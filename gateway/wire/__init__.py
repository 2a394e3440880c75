"""The OpenAI wire format: errors, server-sent events, JSON Lines files, token counts, usage,
request validation, which headers cross the gateway in each direction, and how long an uploaded
audio file plays (`audio_length`, read by the gateway to hold a transcription and by the
simulator to bill it).

Pure: no I/O and no clock (ids come from `secrets`). Imports only the standard library, orjson,
toktok-rs (the o200k_base vocabulary, compiled in) and itself, so the simulated upstream can
share it with the gateway.
"""
