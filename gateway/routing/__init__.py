"""Auto-routing: which model a request sent to an alias such as `auto` goes to.

`heuristic` (the decision: a domain and a difficulty, then a model), `vocabulary` (its word
lists), `evaluation` (decisions scored against labeled prompts) and `aliases` (which policy an
alias means for a team, the `x-gateway-route-*` headers) are pure: no I/O and no clock. Imports
config and teams' records only. What needs I/O (the budget step-down reads the team's spend)
and `POST /v1/route` are `gateway.endpoints.route`.
"""
