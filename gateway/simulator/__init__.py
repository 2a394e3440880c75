"""A simulated OpenAI upstream (September 2024 behaviour) for tests, demos and benchmarks.

Its calendar (`simulator.today`, the `x-sim-today` knob) moves it on: models shut down by then
are refused, and today's GPT-6 models are served from their release (lifecycle.py).

It stands beside the gateway's layers, not in them: it imports only `gateway.wire` and
`gateway.config`, so it answers as OpenAI would whatever the gateway does. `app` is a raw ASGI
app (it sleeps and sends, as an upstream would); every other module is pure.
"""

from gateway.simulator.app import SimulatedReset, Simulator, create_simulator

__all__ = ["SimulatedReset", "Simulator", "create_simulator"]
