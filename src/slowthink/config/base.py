"""The base of every config, and the error a config that cannot run raises."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A configuration that cannot be run: the message names the key and what is allowed."""


class StrictConfig(BaseModel):
    """Base of every config: frozen, and an unknown key is an error, never ignored."""

    # Override values are parsed as YAML, so `run.output_dir=2024` arrives as an int: a number
    # given for a text field is taken as its text, not rejected. The docstring under a field is
    # its doc (`slowthink config CMD`, docs/config.md, a flag's --help); a `#` comment is not.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, coerce_numbers_to_str=True, use_attribute_docstrings=True)
