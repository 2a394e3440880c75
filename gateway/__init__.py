"""o1-gateway: an OpenAI-compatible gateway with team keys, budgets, rate limits, auto-routing
and o1 compatibility patches.

The folders are the layer diagram. Read it bottom to top: a package imports from the rows below
it, never from a row above; each package's `__init__` docstring states its own rule (what it
holds, what it may import, whether it does I/O) and names any exception the code still makes.

    cli/  __main__.py        entry points: the `o1-gateway` commands
    app.py                   the composition root: routes, middleware, error handlers, lifespan
    admin/  endpoints/       the admin API; what each OpenAI endpoint does
    server/                  the ASGI edge: Starlette and uvicorn, the per-request record
    runtime/                 the `Gateway` object built in the lifespan, and how it is built
    upstream/  admission/    calls to OpenAI; limits, pricing and admission on Redis
    teams/  observability/   team and key records and their Redis store; metrics
    compat/  routing/        pure: request and answer rewriting; the routing heuristic
    wire/  config.py         pure: the OpenAI wire format; configuration

    simulator/               beside the stack: the simulated upstream, built on wire/ and
                             config.py only; runtime/ and cli/ start it
"""
