"""Pure translators between OpenAI API shapes, bytes or dicts in and out, one module per
client/backend pair (the file list reads as the feature matrix). No I/O, clock or randomness:
ids and times come from the caller. Imports only gateway.wire and gateway.config.

    responses_chat         a Responses API request and answer, served by chat completions
    responses_chat_stream  its stream: chat.completion.chunk SSE in, Responses events out
    audio_formats          speech events in, raw audio out; a JSON transcript in, the text or
                           JSON the client asked for out (so that upstream reports the usage)
"""
