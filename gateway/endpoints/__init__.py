"""What each OpenAI endpoint does: chat completions first, then models and the generic
pass-through; the Responses API and the other endpoint families go here too.

`attempt` is one try at serving a request upstream, in named phases (admit, call, relay,
settle), `model_attempt` a try at a configured model (holding its worst case) and `charging`
what a try that ends is charged; `chat` is `POST /v1/chat/completions` (a `ChatRequest`
served by `ChatAttempt`s, which patch before those phases), with the answers the gateway builds itself in `chat_emulated` and
`chat_fake_stream`; `passthrough`, `models`, `route` and `health` are the rest.

Imports everything below it (server, runtime, upstream, admission, compat, routing, wire, config)
and Starlette's request and response classes; nothing imports it but the composition root
(`gateway.app`). Its I/O goes through those layers.
"""
