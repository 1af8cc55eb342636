"""``slowthink sandbox run FILE.py``: run one file as a cell, print the result as JSON.

Must not import torch, transformers, modeling, rollout, training or recipes (tests/test_layers.py);
the sandbox itself (slowthink/sandbox/) is imported when the command runs.

For debugging and scripting: the exit code is 0 whatever the cell did (the status is
in the JSON); only a bad option (exit 2) or a sandbox that cannot start (exit 1) exits
non-zero, as cli/errors.py says for every command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

sandbox_app = typer.Typer(help="Run Python in the tool sandbox (see docs/sandbox.md).", no_args_is_help=True)


@sandbox_app.command("run")
def run_file(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="Python file to run as one cell."),
    config: Path | None = typer.Option(None, "--config", help="YAML file with SandboxConfig fields."),
    overrides: list[str] = typer.Option([], "--set", help="Override a field, e.g. --set timeout_s=2 (repeatable)."),
) -> None:
    """Run FILE in a fresh sandbox and print {status, stdout, stderr, wall_s, ...} as one JSON object."""
    from slowthink.config import load_config
    from slowthink.sandbox.config import SandboxConfig
    from slowthink.sandbox.host import ProcessSandbox

    settings = load_config(SandboxConfig, config, list(overrides))
    code = file.read_text(encoding="utf-8", errors="replace")
    with ProcessSandbox(settings) as sandbox:
        result = sandbox.run(code)
    sys.stdout.write(json.dumps(result.to_dict()) + "\n")
