"""The running gateway: the `Gateway` object, built once in the app's lifespan and closed with
it, and how it is built.

`gateway` holds everything a request needs (config, Redis, team store, admission, upstream
dispatch, metrics, the access log, learned capabilities, bookkeeping run after responses) and
`open_gateway` builds it from a Config; `redis_connection` opens Redis (a real server, or an
embedded fakeredis when none is configured). Does I/O: it opens connections, loads the teams
file and runs background tasks. May import every lower layer, and the simulator for
`--simulate`. `gateway` is the object; `build` makes it from a Config.
"""
