"""Admission: whether a request fits its team's and key's rate limits and budget, and what it is
charged when it ends.

`plan` (which limits apply, and the plan the script checks) and `pricing` (costs in integer
micro-dollars) are pure. `redis_side` does the Redis I/O: one round trip of `admission.lua`
checks every limit and holds the worst-case cost, a settle moves the hold to the real cost, and
an in-process limiter stands in for the rate limits while Redis is away; `script_pipeline` is
the pipelined client that sends the script over plain `redis://` connections. Imports config,
wire, teams (records) and observability (metrics), nothing above them.
"""
