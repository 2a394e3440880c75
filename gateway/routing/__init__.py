"""Auto-routing: which model a request sent to an alias such as `auto` goes to.

`heuristic` (the decision: class probabilities, then a model by the policy's thresholds, with
its reasons), `features` (what is read of a text), `signals` (the hand-written evidence),
`vocabulary` (its word lists), `linear` (the learned model and its weights file), `evaluation`
(decisions scored against labeled prompts) and `aliases` (which policy an alias means for a
team, the `x-gateway-route-*` headers) are pure: no I/O and no clock. The one file read is
`weights.json`, shipped beside the code and read once at import, like code; it is written by
`bench/router_train.py`, which is not part of the gateway. Imports config and teams' records
only. What needs I/O (the budget step-down reads the team's spend) and `POST /v1/route` are
`gateway.endpoints.route`.

The modules a decision runs through (`NATIVE`) are compiled to C by mypyc when the package is
built (`setup.py`), as the tracer's are; `gateway.compiled` loads them from their sources
instead when they changed since the build, or with O1GW_PURE_PYTHON=1 in the environment.
"""

from __future__ import annotations

from gateway.compiled import load_sources

# In the order they import each other.
NATIVE = ("vocabulary", "signals", "features", "linear")
load_sources(__name__, NATIVE, "routing")
