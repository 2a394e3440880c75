"""Compatibility with models that lack a feature: requests and answers rewritten so any client
can talk to any configured model.

`patches` adapts a chat request to the model's `Capabilities` row and undoes it on the answer,
and remembers for a while what upstream refused although the table granted it; `emulation`
emulates tools and structured output by prompting; `fake_stream` rebuilds a stream from a whole
completion. Pure: no I/O and no clock (the time is passed in). Imports config and wire (plus
orjson and jsonschema); the endpoints call it around the upstream call.
"""
