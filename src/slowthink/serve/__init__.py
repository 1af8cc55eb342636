"""``slowthink serve``: an OpenAI-compatible HTTP server over the CPU ``HFGenerator``.

Must not import recipes or the CLI (tests/test_layers.py); nothing in the library imports
this package, and only ``app`` imports fastapi and only ``server`` imports uvicorn.

It exists so that the OpenAI backend is tested against a real server, and so a small
checkpoint can be served without vLLM. The modules, from the bottom up:

- ``scheduler``: one thread runs the model; requests take turns a few tokens at a time.
- ``api``: what a request may hold, and how a valid one becomes a ``Plan``.
- ``replies``: the JSON bodies and the streamed chunks (pure functions).
- ``app``: the FastAPI application (endpoints, error mapping, disconnects, streaming).
- ``server``: ``ServeConfig`` and ``serve``, which loads the model and runs uvicorn.
"""
