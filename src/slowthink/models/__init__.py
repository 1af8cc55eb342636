"""Models: loading a causal LM and its tokenizer, and the embedded tiny default.

Must not import data, rewards, monitors, rollout, training, eval, recipes, serve or the CLI
(tests/test_layers.py): everything that uses a model sits above this package, and data,
rewards, sandbox, algorithms and monitors never import it.

- ``modeling``: the tiny default, a local path or a hub name -> model and tokenizer; CPU
  threads; the memory plan a recipe sets on the model it loads.
- ``tiny``: the character tokenizer and the small Qwen2-architecture model, built in-process
  (its task is ``slowthink.data.tiny_task``). It must not import ``modeling``, which builds
  the tiny model through it.
- ``quiet``: silences transformers' logging and progress bars; imports no slowthink module.
"""
