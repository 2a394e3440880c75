"""Teams and their keys: who may call, with which tier, budget, limits and models.

`records` (the records, their stored and admin-API forms, validation) and `credentials` (bearer
keys and the SHA-256 digests they are stored as) are pure. `store` does the Redis I/O: teams and
keys shared by every replica, read through a short per-process cache. Imports config and wire
only.
"""
