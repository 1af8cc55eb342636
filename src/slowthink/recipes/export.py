"""``slowthink export``: a checkpoint -> a clean Hugging Face folder with a model card.

A checkpoint (``run/checkpoints/step_NNNNNN``) holds what training needs to continue: the
optimizer's moments, RNG states, a manifest. The exported folder holds what a user loads:

- a full-weights checkpoint: ``config.json``, the safetensors weights, generation config and
  tokenizer, as ``AutoModelForCausalLM.from_pretrained`` reads them;
- a sharded checkpoint (``distributed.checkpoint_format=sharded``): its shards read into one
  CPU model and saved as the full-weights folder above;
- a LoRA checkpoint (``model.lora``): the adapter and tokenizer, as peft loads them onto the
  base model; with ``merge`` the adapter is merged into the base weights (peft's
  ``merge_and_unload``) and the folder is a plain transformers model;
- ``README.md``: a model card with the run's training config (``config.yaml``) and its final
  metrics (the last value of each metric in ``metrics.jsonl``).

``push_to_hub`` uploads the folder with ``huggingface_hub`` (token from ``HF_TOKEN`` or ``hf auth login``).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import yaml

from slowthink.durable import CheckpointError, OutputPathError
from slowthink.training.checkpoint import is_sharded_checkpoint, latest_checkpoint, verify_checkpoint
from slowthink.training.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS, holds_adapter

# Training-only files of a checkpoint, never exported; peft's own README is replaced by the card.
TRAINING_FILES = {"trainer_state.pt", "manifest.json", "README.md"}
# Metrics whose final values head the card's table when present; every other metric follows.
HEADLINE = ("heldout/accuracy", "accuracy", "reward", "response_length", "loss", "kl")


def find_checkpoint(path: Path) -> Path:
    """``path`` itself when it is a checkpoint, else a run directory's newest checkpoint."""
    path = Path(path)
    if (path / "trainer_state.pt").is_file():
        return path
    newest = latest_checkpoint(path) if path.is_dir() else None
    if newest is None:
        raise CheckpointError(f"{path} is neither a checkpoint (run/checkpoints/step_NNNNNN) nor a run directory with one")
    return newest


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run directory a checkpoint belongs to (``run/checkpoints/step_NNNNNN``), if it is one."""
    run_dir = checkpoint.resolve().parent.parent
    return run_dir if checkpoint.resolve().parent.name == "checkpoints" and (run_dir / "config.yaml").is_file() else None


def final_metrics(metrics_file: Path) -> dict[str, tuple[int, float]]:
    """Every metric's last logged value and its step (held-out metrics are logged only at evaluations)."""
    from slowthink.tracking import read_metrics

    final: dict[str, tuple[int, float]] = {}
    for row in read_metrics(metrics_file) if metrics_file.is_file() else []:
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                final[key] = (int(row.get("step", 0)), float(value))
    return final


def export_checkpoint(checkpoint: Path, out: Path, merge: bool = False) -> Path:
    """Write ``out`` (a new or empty folder) from ``checkpoint`` or a run directory; returns ``out``."""
    checkpoint = find_checkpoint(checkpoint)
    verify_checkpoint(checkpoint)  # a damaged checkpoint names its bad file
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputPathError(f"--out {out} exists and is not an empty folder: choose a new path")
    adapter = holds_adapter(checkpoint)
    if not adapter and not any(checkpoint.glob("*.safetensors")) and not is_sharded_checkpoint(checkpoint):
        raise CheckpointError(f"{checkpoint} holds no weights to export (no *.safetensors, no sharded/ shards)")
    run_dir = run_dir_of(checkpoint)
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) if run_dir else {}
    out.mkdir(parents=True, exist_ok=True)
    if adapter and merge:
        write_merged(checkpoint, out, config)
    elif is_sharded_checkpoint(checkpoint):
        write_from_shards(checkpoint, out)
    else:
        for file in sorted(checkpoint.iterdir()):
            if file.is_file() and file.name not in TRAINING_FILES:
                shutil.copy2(file, out / file.name)
    metrics = final_metrics(run_dir / "metrics.jsonl") if run_dir else {}
    kind = "adapter" if adapter and not merge else "merged" if adapter else "full"
    (out / "README.md").write_text(model_card(checkpoint, config, metrics, kind))
    return out


def write_from_shards(checkpoint: Path, out: Path) -> None:
    """A sharded checkpoint's weights as safetensors, with its config and tokenizer files.

    The shards are read into one CPU model (the full weights once, in the dtype the run
    trained in; no optimizer state), then saved as ``save_pretrained`` writes them.
    """
    from slowthink.training.sharded_checkpoint import sharded_to_full

    sharded_to_full(checkpoint).save_pretrained(out, safe_serialization=True)
    for file in sorted(checkpoint.iterdir()):
        if file.is_file() and file.name not in TRAINING_FILES and not (out / file.name).exists():
            shutil.copy2(file, out / file.name)


def base_model_path(checkpoint: Path, config: dict[str, Any]) -> str:
    """The base a LoRA checkpoint adapts: the run's ``model.path``, else what peft recorded."""
    path = (config.get("model") or {}).get("path")
    if path:
        return path
    return json.loads((checkpoint / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]


def write_merged(checkpoint: Path, out: Path, config: dict[str, Any]) -> None:
    """The base model with the checkpoint's adapter merged in, saved as a plain transformers model."""
    from peft import PeftModel

    from slowthink.models.modeling import load_model_and_tokenizer

    dtype = (config.get("model") or {}).get("dtype", "float32")
    base, tokenizer = load_model_and_tokenizer(base_model_path(checkpoint, config), dtype)
    merged = PeftModel.from_pretrained(base, str(checkpoint)).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    # The tokenizer as the run saved it (its chat template included), else the base's.
    if (checkpoint / "tokenizer_config.json").is_file():
        for file in checkpoint.iterdir():
            if file.is_file() and file.name.startswith(("tokenizer", "chat_template", "special_tokens", "vocab", "merges")):
                shutil.copy2(file, out / file.name)
    else:
        tokenizer.save_pretrained(out)


def model_card(checkpoint: Path, config: dict[str, Any], metrics: dict[str, tuple[int, float]], kind: str) -> str:
    """README.md: front matter for the Hub, what the folder holds, how to load it, config and metrics."""
    recipe = "rl" if "rollout" in config else "sft" if config else "unknown"
    base = (config.get("model") or {}).get("path", "unknown")
    step = checkpoint.name.removeprefix("step_").lstrip("0") or "0"
    title = Path((config.get("run") or {}).get("output_dir") or checkpoint.name).name
    front = {"library_name": "peft" if kind == "adapter" else "transformers", "tags": ["slowthink", recipe] + (["lora"] if kind != "full" else [])}
    if base not in ("unknown", "tiny") and not Path(base).exists():
        front["base_model"] = base  # a hub id; a local path means nothing on the Hub
    loading = {
        "adapter": f'from peft import AutoPeftModelForCausalLM\nmodel = AutoPeftModelForCausalLM.from_pretrained("PATH")  # on {base}',
        "merged": 'from transformers import AutoModelForCausalLM\nmodel = AutoModelForCausalLM.from_pretrained("PATH")',
        "full": 'from transformers import AutoModelForCausalLM\nmodel = AutoModelForCausalLM.from_pretrained("PATH")',
    }[kind]
    what = {
        "adapter": f"a LoRA adapter ({ADAPTER_WEIGHTS}) for the base model `{base}`",
        "merged": f"the base model `{base}` with its LoRA adapter merged into the weights",
        "full": "the full weights",
    }[kind]
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# {title} (step {step})",
        "",
        f"Trained with slowthink `{recipe}`, exported from `{checkpoint.name}`: {what}.",
        "",
        "```python",
        loading,
        "```",
        "",
        "## Final metrics",
        "",
        *metrics_table(metrics),
        "",
        "## Training config",
        "",
        "```yaml",
        yaml.safe_dump(config, sort_keys=False).strip() if config else "# no config.yaml beside the checkpoint",
        "```",
        "",
    ]
    return "\n".join(lines)


def metrics_table(metrics: dict[str, tuple[int, float]]) -> list[str]:
    if not metrics:
        return ["No metrics.jsonl beside the checkpoint."]
    keys = [k for k in HEADLINE if k in metrics] + sorted(k for k in metrics if k not in HEADLINE)
    return ["| metric | value | step |", "|---|---|---|", *(f"| {k} | {metrics[k][1]:.6g} | {metrics[k][0]} |" for k in keys)]


def push_to_hub(folder: Path, repo_id: str, private: bool = False) -> str:
    """Create ``repo_id`` if needed and upload ``folder``; returns the commit's URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="Upload model exported by slowthink")
    return str(getattr(commit, "commit_url", commit))


def upload_failed(error: BaseException) -> bool:
    """An upload that failed outside the program: the Hub's HTTP errors (a refused token, no such
    repo), an OSError, or the transport errors (httpx's) that huggingface_hub lets through offline."""
    from huggingface_hub.errors import HfHubHTTPError

    return isinstance(error, (HfHubHTTPError, OSError)) or any(cls.__module__.split(".")[0] == "httpx" for cls in type(error).__mro__)
