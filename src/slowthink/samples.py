"""What the model wrote during RL: ``<run_dir>/samples/step_NNNNNN.jsonl`` every few steps.

Must not import torch, transformers or the CLI (tests/test_layers.py).

Every ``train.log_samples_every`` steps the first ``train.log_samples_prompts`` prompts of
the step (rank 0's share) are written with all their rollouts, one row per rollout: the
prompt, the completion, the total reward and every component, the checker's verdict, the
length in tokens and the finish reason. One file per step, written whole and renamed into
place, so a kill never leaves half a file; a resumed run first removes the files of steps
after its checkpoint, which it then writes again: no step is ever there twice.

``slowthink report`` shows a few of them, the first and the last logged step side by side,
so whether thinking emerges can be read without generating again (``sample_section``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slowthink.durable import atomic_write_text

SAMPLES_DIR = "samples"
_STEP_FILE = re.compile(r"^step_(\d{6,})\.jsonl$")


def sample_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / SAMPLES_DIR / f"step_{step:06d}.jsonl"


def samples_due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def sample_rows(step: int, problems: Sequence[Any], completions: Sequence[Any], scored: Any, prompts: int) -> list[dict[str, Any]]:
    """One row per rollout of the first ``prompts`` problems (``completions[i].prompt_index``
    indexes ``problems``; ``scored`` is the step's ``RewardBatch``)."""
    rows = []
    for i, completion in enumerate(completions):
        if completion.prompt_index >= prompts:
            continue
        problem, verdict = problems[completion.prompt_index], scored.verdicts[i]
        rows.append(
            {
                "step": step,
                "problem_id": problem.id,
                "prompt": problem.problem,
                "answer": problem.answer,
                "completion": completion.text,
                "reward": scored.total[i],
                "rewards": {name: values[i] for name, values in scored.components.items()},
                "verdict": verdict.status,
                "extracted": verdict.extracted,
                "length": completion.num_model_tokens,
                "finish_reason": completion.finish_reason,
            }
        )
    return rows


def write_samples(run_dir: Path, step: int, rows: Sequence[dict[str, Any]]) -> Path:
    path = sample_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def sample_steps(run_dir: Path) -> list[int]:
    """Steps with a samples file, in order."""
    folder = Path(run_dir) / SAMPLES_DIR
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name)))


def drop_samples_after(run_dir: Path, step: int) -> None:
    """On resume from the checkpoint of ``step``: the later files are written again, so go."""
    for later in (s for s in sample_steps(run_dir) if s > step):
        sample_path(run_dir, later).unlink(missing_ok=True)


def read_samples(run_dir: Path, step: int) -> list[dict[str, Any]]:
    rows = []
    for line in sample_path(run_dir, step).read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def _cell(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[: limit // 2] + " … " + text[-limit // 2 :]
    return text.replace("|", "\\|")


def sample_section(run_dir: Path, rollouts: int = 3, limit: int = 400) -> str:
    """Markdown: a few rollouts of the first and the last logged step, side by side ('' if none)."""
    steps = sample_steps(run_dir)
    if not steps:
        return ""
    first, last = steps[0], steps[-1]
    before, after = read_samples(run_dir, first)[:rollouts], read_samples(run_dir, last)[:rollouts]
    lines = [
        "## What the model wrote",
        "",
        f"The first rollouts of step {first} and of step {last} (`samples/`; every rollout of the logged prompts is there).",
        "",
        f"| step {first} | step {last} |",
        "|---|---|",
    ]
    for i in range(max(len(before), len(after))):
        cells = []
        for rows in (before, after):
            row = rows[i] if i < len(rows) else None
            cells.append(
                "" if row is None else f"**{row['verdict']}**, reward {row['reward']:.3g}, {row['length']} tokens: {_cell(row['completion'], limit)}"
            )
        lines.append(f"| {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"
