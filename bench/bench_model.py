"""The benchmark model, built locally: a Qwen2 with a 2,048-token byte-level BPE.

    h128-l4: hidden 128, 4 layers, 4 heads, intermediate 512, tied embeddings (1.31M parameters)
    h256-l6: hidden 256, 6 layers, 4 heads, intermediate 1024, tied embeddings

The BPE is trained on the Python standard library's own sources (on every machine, no
download), so the vocabulary has real multi-character tokens; the weights are a seeded
random initialisation. Both benchmark scripts load the saved directory, so TRL and
slowthink (and transformers ``generate``) run the identical model and tokenizer.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

SIZES = {
    "h128-l4": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512),
    "h256-l6": dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=4, intermediate_size=1024),
}
VOCAB = 2048
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


def _corpus(limit_files: int = 300):
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.glob("*.py"))[:limit_files]:
        yield path.read_text(errors="ignore")


def build_tokenizer(out: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<|endoftext|>", "<|pad|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    core.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|pad|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)
    return tokenizer


def build(size: str, root: Path) -> Path:
    """Save the model ``size`` (with its tokenizer) under ``root``; reuse it when present."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = root / f"bench-qwen2-{size}"
    if (out / "config.json").is_file():
        return out
    tokenizer = build_tokenizer(out)
    dims = SIZES[size]
    config = Qwen2Config(
        vocab_size=VOCAB,
        num_key_value_heads=dims["num_attention_heads"],
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        **dims,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    return out


def matmul_peak_gflops(threads: int, size: int = 1024, repeats: int = 20) -> float:
    """The best fp32 matmul rate of ``threads`` torch threads (the MFU denominator)."""
    import time

    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def flops_per_token(config, context: float) -> float:
    """Forward FLOPs of one token: 2 per weight of every matmul (LM head included) plus
    attention's two matmuls over ``context`` earlier tokens."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    kv = hidden // config.num_attention_heads * config.num_key_value_heads
    per_layer = 2 * (hidden * (hidden + 2 * kv) + hidden * hidden + 3 * hidden * config.intermediate_size)
    attention = 2 * 2 * hidden * context
    return layers * (per_layer + attention) + 2 * hidden * config.vocab_size


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else "h128-l4", Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp")))
