"""Teams and their keys: who may call, with which tier, budget, limits and models; and the
tombstones deleted teams leave, so that their names (under which what they owned is still
kept) pass to a new team only when the admin says it inherits.

`records` (the records, their stored and admin-API forms, validation) is pure. `store` does the
Redis I/O: teams and keys shared by every replica, read through a short per-process cache, each
key stored only as its SHA-256 digest. Imports config and wire only.
"""
