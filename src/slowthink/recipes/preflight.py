"""Can this config run on this machine? Every problem at once, before anything is loaded.

A config can be valid (every key and value allowed) and still not run here: a GPU preset
on a laptop, vLLM not installed, a data file that was never made. Reporting these one at
a time sends a newcomer round in circles ("use model.device=cpu", then "vllm needs a
GPU", then "data file not found"), so ``check_runnable`` gathers them all into one
``ConfigError``, each with what to do and, for data, where that data comes from.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from slowthink.config import ConfigError
from slowthink.data.tables import is_hub_id

# What each data file holds and where it comes from (the presets' comments say the same).
TRAIN_PROBLEMS_HINT = (
    'RL problems are JSONL rows {"id", "problem", "answer"}; the paper trains on curated, verifiable '
    "problems (section 2): build a pool with `slowthink curate SOURCE.jsonl --out data/train.jsonl` "
    "(e.g. from the MATH train split and past AIME problems), or point data.train_file at your own file"
)
EVAL_PROBLEMS_HINT = (
    "held-out problems in the same JSONL format; data/aime24.jsonl is AIME 2024 (30 problems, the Hugging "
    "Face copy HuggingFaceH4/aime_2024 that `slowthink eval -b aime24` uses), or leave data.eval_file unset"
)
SFT_ROWS_HINT = 'SFT rows are JSONL {"prompt", "response"} or {"messages": [...]} (docs/tools.md for tool data)'


def check_runnable(config: Any, cuda_available: bool | None = None, vllm_installed: bool | None = None) -> None:
    """Raise one ``ConfigError`` listing every reason ``config`` (RL or SFT) cannot run here.

    ``cuda_available`` / ``vllm_installed`` default to probing this machine (tests pass them).
    """
    if cuda_available is None:
        cuda_available = _cuda_available()
    if vllm_installed is None:
        vllm_installed = importlib.util.find_spec("vllm") is not None
    problems = [
        *_device_problems(config, cuda_available),
        *_backend_problems(config, vllm_installed),
        *_model_problems(config),
        *_data_problems(config),
    ]
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise ConfigError(f"this config cannot run here ({count}):\n  - " + "\n  - ".join(problems))


def _device_problems(config: Any, cuda_available: bool) -> list[str]:
    device = str(config.model.device)
    if device.startswith("cuda") and not cuda_available:
        return [
            f"model.device={device}: no CUDA device on this machine. This config is for a GPU machine; "
            "to try the pipeline on a CPU, run `slowthink demo` or start from configs/tiny_rl.yaml"
        ]
    return []


def _backend_problems(config: Any, vllm_installed: bool) -> list[str]:
    rollout = getattr(config, "rollout", None)  # SFT has no rollouts
    if rollout is None or rollout.backend != "vllm" or vllm_installed:
        return []
    return [
        "rollout.backend=vllm: the vllm package is not installed (pip install 'slowthink[vllm]' on a CUDA "
        "machine, or `make vllm-env` for the CPU build; docs/scale.md); rollout.backend=hf generates with "
        "transformers instead, slowly for long chains of thought"
    ]


def _model_problems(config: Any) -> list[str]:
    from slowthink.models.modeling import TINY, ModelLoadError, resolve_model_path

    problems = []
    try:
        # A hub name passes (fetched, or found in the cache, at load); "tiny" is built on first use.
        if config.model.path != TINY:
            resolve_model_path(config.model.path)
    except ModelLoadError as exc:
        problems.append(f"model.path={config.model.path}: {exc}")
    state = getattr(config.model, "optimizer_state", None)
    if state and not Path(state).expanduser().is_dir():
        problems.append(f"model.optimizer_state={state}: no such checkpoint directory (an SFT run's checkpoints/step_NNNNNN)")
    elif state:
        from slowthink.training.optim import optimizer_state_problem

        if (problem := optimizer_state_problem(Path(state).expanduser())) is not None:
            problems.append(f"model.optimizer_state={state}: {problem}")
    return problems


def _data_problems(config: Any) -> list[str]:
    data = config.data
    if data.source == "tiny":
        return []
    rl = hasattr(config, "rollout")
    files = [("train_file", TRAIN_PROBLEMS_HINT if rl else SFT_ROWS_HINT), ("eval_file", EVAL_PROBLEMS_HINT)]
    problems = []
    for key, hint in files:
        path = getattr(data, key, None)
        # A dataset folder (DIR or DIR@SPLIT) or a Hub id (read at load, from the cache offline) is no file.
        if path and not Path(path).expanduser().exists() and not Path(path.partition("@")[0]).expanduser().is_dir() and not is_hub_id(path):
            where = "" if Path(path).is_absolute() else f" (relative to {Path.cwd()})"
            problems.append(f"data.{key}={path}: file not found{where}. {hint}")
    return problems


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
