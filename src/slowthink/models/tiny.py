"""The embedded tiny default: a character tokenizer and a small Qwen2-architecture model,
built in-process (no downloads). Its task, the sum of K numbers of D digits, is
``slowthink.data.tiny_task.ArithmeticTask``.
"""

from __future__ import annotations

import hashlib
import string
import threading
from dataclasses import dataclass
from pathlib import Path

# Multi-character tokens of the reasoning format, matched before single characters.
FORMAT_TOKENS = ("<think>", "</think>", "\\boxed{", "<answer>", "</answer>", "```python", "```output", "```")
SPECIAL_TOKENS = {"pad": "<|pad|>", "eos": "<|endoftext|>", "user": "<|user|>", "assistant": "<|assistant|>", "unk": "<|unk|>"}
# No system prompt: the bare chat template of the paper's Table 6 (STILL-3-1.5B).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}<|user|>{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}<|assistant|>{{ message['content'] }}<|endoftext|>"
    "{% else %}{{ message['content'] }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_fingerprint(spec: TinyModelSpec | None = None) -> str:
    """A short hash of everything that defines the tiny default (cache key of its saved copy)."""
    spec = spec or TinyModelSpec()
    text = repr((SPECIAL_TOKENS, FORMAT_TOKENS, string.printable, CHAT_TEMPLATE, spec, TOKENIZER_VERSION))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# Bump when the tokenizer's construction changes in a way the fields above do not show.
TOKENIZER_VERSION = 2


def build_tokenizer():
    """A character-level fast tokenizer (printable ASCII + format tokens) in HF format."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = list(SPECIAL_TOKENS.values())
    chars = [c for c in string.printable if c not in "\x0b\x0c\r"]
    vocab = {token: i for i, token in enumerate(specials + list(FORMAT_TOKENS) + chars)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk"]))
    # Every character is its own token; Fuse joins them back without spaces.
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in specials])
    core.add_tokens([AddedToken(t, normalized=False, special=False) for t in FORMAT_TOKENS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=SPECIAL_TOKENS["pad"],
        eos_token=SPECIAL_TOKENS["eos"],
        unk_token=SPECIAL_TOKENS["unk"],
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


_SEEDED_INIT = threading.Lock()


@dataclass(frozen=True)
class TinyModelSpec:
    """Size of the tiny Qwen2 model (~1M parameters at the defaults)."""

    hidden_size: int = 128
    """Width of the residual stream."""
    num_layers: int = 4
    """Decoder layers."""
    num_heads: int = 4
    """Attention heads (one key/value head each: no grouped-query attention at this size)."""
    intermediate_size: int = 512
    """Width of each MLP's hidden layer."""
    max_positions: int = 1024
    """Context length (max_position_embeddings): prompt plus response."""


def build_model(tokenizer, spec: TinyModelSpec = TinyModelSpec(), seed: int = 0):
    """A freshly initialised Qwen2ForCausalLM sized by ``spec`` (fp32, tied embeddings)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    # The initialisation draws from torch's one process-wide generator: seed and draw under a
    # lock, so that threads building models at once (a parallel study) each get their seed's
    # weights, and restore the caller's random state afterwards.
    with _SEEDED_INIT, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def save_tiny(path: str | Path, spec: TinyModelSpec = TinyModelSpec(), seed: int = 0) -> Path:
    """Build the tiny tokenizer and model and save both in Hugging Face format at ``path``."""
    from slowthink.models.quiet import quiet_transformers

    quiet_transformers()
    path = Path(path)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, spec, seed)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
