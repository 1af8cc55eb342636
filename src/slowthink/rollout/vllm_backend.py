"""``VLLMGenerator``: the ``Generator`` protocol over vLLM's offline engine (GPU).

vLLM is imported only when a ``VLLMGenerator`` is built, so ``import slowthink`` and the
CPU path never need it. Prompts go in as token ids (``{"prompt_token_ids": ids}``) and the
sampled ids and log-probs come back as vLLM produced them: RL keeps exactly what was
sampled (see ``rollout.generator``).

Weight sync (``update_weights``) loads the trainer's ``state_dict`` into the engine's model
through ``model.load_weights(iterable of (name, tensor))``, the loader vLLM uses for
checkpoints (names as in the Hugging Face checkpoint). Reaching that model object needs
the engine in this process: vLLM's V1 engine runs it in a separate process unless
``VLLM_ENABLE_V1_MULTIPROCESSING=0``, which we set before building the engine when weight
sync is enabled (the same arrangement TRL's and verl's colocated modes use). The object
lives at ``llm.llm_engine.model_executor.driver_worker.worker.model_runner.model`` in
current vLLM and at ``...driver_worker.model_runner.model`` in older V0 releases; we try
both and fail with an error that names them. The prefix cache is reset after a sync, as
cached KV blocks were computed by the old weights.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from slowthink.rollout.generator import Completion, FinishReason, SamplingParams


class BackendUnavailableError(RuntimeError):
    """An optional engine that is not installed or cannot do what was asked."""


def vllm_sampling_kwargs(params: SamplingParams, logprobs: int | None = 0) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` equivalent to ``params``.

    ``logprobs=0`` asks vLLM for the sampled token's log-prob only. The stop string is kept
    in the text (``include_stop_str_in_output``), as ``Completion`` promises; greedy is
    ``temperature=0`` in both.
    """
    kwargs: dict[str, Any] = {
        "n": params.n,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_new_tokens,
        "stop": list(params.stop) or None,
        "include_stop_str_in_output": True,
        "logprobs": logprobs,
        "seed": params.seed,
        "skip_special_tokens": True,
    }
    return kwargs


def completion_from_vllm(output: Any, prompt_index: int) -> Completion:
    """A ``Completion`` from one ``vllm.CompletionOutput`` (duck-typed: also used by tests)."""
    token_ids = list(output.token_ids)
    logprobs: list[float] = []
    if output.logprobs is not None:
        # One dict per generated token, {token id: Logprob}; the sampled id is always a key.
        logprobs = [float(step[token].logprob) for step, token in zip(output.logprobs, token_ids)]
    reason = output.finish_reason
    if reason not in ("stop", "length"):
        raise BackendUnavailableError(f"vLLM finished prompt {prompt_index} with {reason!r} (expected stop or length)")
    finish: FinishReason = "length" if reason == "length" else "stop"
    stop_reason = getattr(output, "stop_reason", None)
    return Completion(
        prompt_index=prompt_index,
        token_ids=token_ids,
        logprobs=logprobs or [0.0] * len(token_ids),
        text=output.text,
        finish_reason=finish,
        stop_string=stop_reason if isinstance(stop_reason, str) else None,
    )


def _engine_model(llm: Any) -> Any:
    """The ``nn.Module`` inside an in-process vLLM engine (paths differ across versions)."""
    paths = (
        "llm_engine.model_executor.driver_worker.worker.model_runner.model",
        "llm_engine.model_executor.driver_worker.model_runner.model",
    )
    for path in paths:
        node = llm
        try:
            for part in path.split("."):
                node = getattr(node, part)
        except AttributeError:
            continue
        return node
    raise BackendUnavailableError(
        "cannot reach the vLLM model object to load weights (tried llm." + ", llm.".join(paths) + "); build "
        "VLLMGenerator with enable_weight_sync=True so that VLLM_ENABLE_V1_MULTIPROCESSING=0 is set before vLLM starts"
    )


class VLLMGenerator:
    """Sample with ``vllm.LLM`` on GPU; see the module docstring for weight sync."""

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        dtype: str = "auto",
        max_model_len: int | None = None,
        seed: int = 0,
        enable_weight_sync: bool = False,
        enable_prefix_caching: bool = True,
    ):
        if enable_weight_sync:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            import vllm
        except ImportError:
            raise BackendUnavailableError(
                "the vllm backend needs vLLM on a CUDA machine: pip install 'slowthink[vllm]'; "
                "on CPU use --backend hf, or --backend openai against a running server"
            ) from None
        from slowthink.modeling import resolve_model_path

        self._vllm = vllm
        self.llm = vllm.LLM(
            model=resolve_model_path(model), tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization, dtype=dtype, max_model_len=max_model_len, seed=seed,
            enable_prefix_caching=enable_prefix_caching,
        )

    @property
    def context_length(self) -> int:
        return int(self.llm.llm_engine.model_config.max_model_len)

    def generate(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        sampling = self._vllm.SamplingParams(**vllm_sampling_kwargs(params))
        prompts = [{"prompt_token_ids": list(ids)} for ids in prompt_ids]
        outputs = self.llm.generate(prompts, sampling_params=sampling, use_tqdm=False)
        completions = []
        for index, request in enumerate(outputs):
            # vLLM returns requests in input order; each holds n outputs, ordered by their index.
            for output in sorted(request.outputs, key=lambda o: o.index):
                completions.append(completion_from_vllm(output, index))
        return completions

    def update_weights(self, model: Any) -> None:
        """Copy the trainer's weights (a ``torch.nn.Module``) into the engine."""
        engine_model = _engine_model(self.llm)
        engine_model.load_weights(model.state_dict().items())
        reset = getattr(self.llm, "reset_prefix_cache", None)
        if reset is not None:
            reset()
