"""Auto-routing: which model a request sent to an alias such as `auto` goes to.

`heuristic` (the decision: a domain and a difficulty, then a model), `vocabulary` (its word
lists) and `evaluation` (decisions scored against labeled prompts) are pure: no I/O, no clock,
and nothing imported from the gateway outside this package. `aliases` adds what needs the
caller, the config and Redis: which policy an alias means for a team, the budget step-down on
the team's spend, the `x-gateway-route-*` headers and `POST /v1/route`. Today `aliases`
therefore imports admission, teams, runtime, server and Starlette; its endpoint half belongs in
`gateway.endpoints`.
"""
