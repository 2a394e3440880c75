"""o1-gateway: an OpenAI-compatible gateway with team keys, budgets, rate limits, auto-routing
and o1 compatibility patches.

The folders are the layer diagram. Read it bottom to top: a package imports from its own row and
the rows below it, never from a row above (`tests/unit/test_layers.py` holds the code to this
table); each package's `__init__` docstring states its own rule (what it holds, what it may
import, whether it does I/O).

    cli/  __main__.py           entry points: the `o1-gateway` commands
    app.py                      the composition root: routes, middleware, error handlers, lifespan
    endpoints/  admin/          what each OpenAI endpoint does; the admin API
    server/                     the ASGI edge: the request's entry, caller, body, streamed answers
    runtime/                    the `Gateway` object built in the lifespan, and how it is built
    upstream/  admission/       calls to OpenAI; limits, pricing and admission on Redis;
    cache/                      the response cache and the calls in flight it shares
    observability/              metrics, the per-request record, the access log
    routing/                    pure: the routing heuristic and aliases
    teams/  objects/            team and key records and their store; who owns what upstream
    compat/  translate/         pure request and answer rewriting; pure translation between API
    simulator/                  shapes; the simulated upstream (translate/ and simulator/ on
                                wire/ and config/ only)
    wire/  config/  eventloop/  pure: the OpenAI wire format; configuration; the kept event loop
    compiled.py                 whether the modules mypyc compiled may run (routing, tracing)
"""
