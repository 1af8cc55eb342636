"""Typed configs: a YAML file, then a command's flags, then dotted overrides; unknown keys rejected.

Must not import torch, transformers, recipes or the CLI (tests/test_layers.py): the CLI imports
this package at start-up.

Every component owns one frozen pydantic model (``StrictConfig``, base.py) documented field by
field. ``load_config`` (load.py) is the one loader: YAML file < flags given < ``a.b.c=value``
overrides (each read by its field's type, overrides.py); a later source wins. Any unknown key or
bad value raises one ``ConfigError`` that names the dotted key (and, for an unknown key, the
allowed ones) and blames it on the override or the file it came from. docs.py lists every key
of a command's config (``slowthink config CMD``, docs/config.md).
"""

from slowthink.config.base import ConfigError, StrictConfig
from slowthink.config.load import apply_overrides, config_to_yaml, load_config, parse_override, read_yaml, resolve_config_path, shipped_config_dir

__all__ = [
    "ConfigError",
    "StrictConfig",
    "apply_overrides",
    "config_to_yaml",
    "load_config",
    "parse_override",
    "read_yaml",
    "resolve_config_path",
    "shipped_config_dir",
]
