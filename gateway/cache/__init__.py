"""The exact response cache and request coalescing, for chat completions and the Responses API.

Pure: `key` (the canonical request and its digest), `decision` (whether a request may use the
cache, from its header, its team, its routing policy and its model's shutdown day, and whether a
failed call is made again for its waiters), `entry` (what is kept of an answer, whether an
answer may be kept, what a hit costs), `capture` (a streamed answer gathered back into its final
object) and `replay` (a kept answer sent again, whole or as the stream a miss would have sent).
I/O: `store` (the entries and the locks in Redis, each script on one key's slot, so it runs on a
Redis Cluster) and `flights` (identical requests in flight share one upstream call: in-process
waiters share a future, other replicas poll the entry; when the call fails, one of its waiters
makes it again).

Imports config, wire and compat (the chunk layout of a rebuilt stream), and the event loop
helper; the endpoints use it around their upstream call.
"""
