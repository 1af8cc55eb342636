"""The RL run's sampling seeds: a resumed run draws exactly the rollouts it would have."""

from __future__ import annotations

import hashlib

from slowthink.recipes.rl_config import RLConfig

SEED_MODULUS = 2**62  # completion seeds stay within vLLM's int64 (rollout/vllm_backend.py)


def step_seed(config: RLConfig, step: int, rank: int) -> int:
    """Sampling seed of a step: a resumed run draws exactly the rollouts it would have."""
    return (config.run.seed * 1_000_003 + step * 101 + rank) % (2**31)


def completion_seeds(config: RLConfig, step: int, first_prompt: int, num_prompts: int) -> tuple[int, ...] | None:
    """One seed per completion for vLLM, hashed from (run seed, step, global prompt index, child).

    vLLM seeds a request's n children ``seed + i``, so seeds made by adding offsets (``base +
    step*101 + rank``, then ``+ index*n``) land on each other: with the 1.5B preset's 8 ranks,
    1,024 rollouts of a step drew from 135 streams, some shared with the next step. Hashed
    seeds are distinct streams, whatever the world size. The HF engine hashes its row
    streams itself (rollout/fast_sampling.py) and keeps ``step_seed``: None for it.
    """
    if config.rollout.backend != "vllm":
        return None
    n = config.rollout.rollouts_per_prompt
    return tuple(_hash_seed(config.run.seed, step, first_prompt + prompt, child) for prompt in range(num_prompts) for child in range(n))


def _hash_seed(*parts: int) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % SEED_MODULUS  # within vLLM's int64
