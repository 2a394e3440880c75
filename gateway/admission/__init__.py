"""Admission: whether a request fits its team's and key's rate limits and budget, and what it is
charged when it ends.

Pure: `plan` (which limits apply, and the plan the script checks), `pricing` (costs in integer
micro-dollars; a transcription held for the longest its upload plays, `wire.audio_length`),
`decision` (the script's reply decoded, the `x-ratelimit-*` headers and the 429
of a refusal) and `local_buckets` (the same buckets in-process, standing in for the rate limits
while Redis is away), `auth_backoff` (failed operator keys slowed per client address) and
`team_share` (each team's requests in flight in this worker, bounded).
I/O: `redis_side` runs `admission.lua`, one round trip that checks every
limit and holds the worst-case cost, and settles a `Ticket` to the real cost; `script_pipeline`
is the pipelined client that sends the script over plain `redis://` connections (its types stay
inside this package: callers overlap work with a round trip through `redis_side.EarlyStart`).
Imports config, wire, teams (records), observability (metrics) and the event loop helper,
nothing above them.
"""
