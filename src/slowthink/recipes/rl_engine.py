"""The RL run's rollout engine: built from the config, and kept in step with the trainer's weights.

Which weights an engine samples from depends on the backend and the plan: the HF engine
shares the trainer's module (or holds a copy: stale rollouts, FSDP); vLLM holds its own, and
with stale rollouts a CPU copy that checkpoints save (``Generator.weights_model``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from slowthink.recipes.rl_config import RLConfig
from slowthink.rollout.generator import Generator
from slowthink.training.distributed import DistInfo, copy_full_weights, full_weights, is_sharded, shards_over_ranks, unwrap
from slowthink.training.lora import is_lora, merged_weights


def build_generator(config: RLConfig, model: Any, tokenizer: Any) -> Generator:
    """The rollout engine; a separate copy of the weights when rollouts may be stale.

    With ``rollout.tools=python`` the engine is wrapped in the tool loop: code blocks run in
    the sandbox and their output is spliced in as loss-mask-0 tokens (section 4.4).
    """
    from slowthink.rollout import factory

    if config.rollout.backend == "vllm":
        # A colocated engine built from the same checkpoint as the trainer, in the trainer's
        # dtype; with stale rollouts it keeps a CPU copy of the weights it samples from.
        stale = config.rollout.sync_weights_every > 1
        engine = factory.vllm_engine(
            config.model.path,
            config.rollout.vllm,
            seed=config.run.seed,
            tokenizer=tokenizer,
            dtype=rollout_dtype(config),
            keep_weights_of=model if stale else None,
        )
    else:
        # FSDP: a full copy beside the shards (a sharded forward is collective, and ranks
        # generate different numbers of tokens), synced by gathering after each update.
        shared = config.rollout.sync_weights_every == 1 and config.distributed.strategy != "fsdp"
        engine_model = model if shared else copy.deepcopy(model)
        if not any(p.is_meta for p in engine_model.parameters()):  # an empty copy is filled after the sharding
            engine_model.to(config.model.device)  # FSDP loads on the CPU
        rollout = config.rollout
        engine = factory.hf_engine(
            engine_model, tokenizer, rollout.generation_batch_size or 256, fast=rollout.fast_generation, dtype=rollout.generation_dtype
        )
    if config.rollout.tools == "none":
        return engine
    return factory.with_tools(engine, tokenizer, config.rollout.tool_preset, config.rollout.max_tool_calls)


def rollout_dtype(config: RLConfig) -> str:
    """The vLLM engine's dtype: as set, else the dtype the trainer computes in (fp32 master
    weights under bf16 autocast or FSDP mixed precision roll out in bf16)."""
    if config.rollout.vllm.dtype is not None:
        return config.rollout.vllm.dtype
    if config.model.autocast != "none":
        return config.model.autocast
    if config.distributed.strategy == "fsdp" and config.distributed.param_dtype is not None:
        return config.distributed.param_dtype
    return config.model.dtype


def ranks_load_empty(config: RLConfig, info: DistInfo) -> bool:
    """Whether ranks other than 0 load an empty model (FSDP on several ranks). Stale rollouts
    keep every rank's full copy: the engine's own weights are loaded from it."""
    return shards_over_ranks(info, config.distributed) and config.rollout.sync_weights_every == 1


def generator_sync(generator: Generator, model: Any) -> None:
    """Give the engine the trainer's current weights (``model``: plain, DDP-wrapped or sharded)."""
    engine = generator.weights_model
    if engine is None and is_lora(model):
        # vLLM samples from the base names: each adapter merged into its weight as it streams
        # (through a tool loop, into the engine it wraps).
        getattr(generator, "generator", generator).load_weights(merged_weights(model))
        return
    if isinstance(engine, torch.nn.Module) and is_sharded(model):
        # Every rank gathers the shards (a collective), one tensor at a time, into its own engine copy.
        copy_full_weights(engine, model)
        return
    if engine is not None and is_sharded(model):
        # vLLM's CPU copy for stale rollouts: the gathered weights.
        engine.load_state_dict(full_weights(model))
        return
    generator.update_weights(model)


def fill_engine(generator: Generator, wrapped: Any, config: RLConfig, info: DistInfo, resumed: bool) -> None:
    """Once the policy is sharded (``wrapped``), give the rollout engine the weights that ranks > 0 did not
    load: an HF engine's empty copy gets storage and buffers, then (as a resumed vLLM engine)
    the weights gathered from the shards. Collective: every rank calls it."""
    if not ranks_load_empty(config, info):
        return
    engine = generator.weights_model
    if isinstance(engine, torch.nn.Module):
        if any(p.is_meta for p in engine.parameters()):
            from slowthink.training.fsdp import materialize_like

            materialize_like(engine, unwrap(wrapped), config.model.device)
        generator_sync(generator, wrapped)
    elif engine is None and resumed:
        generator_sync(generator, wrapped)  # restore() could not: the model was empty here
