"""The embedded tiny default: a character tokenizer, a small Qwen2-architecture model and a
synthetic, verifiable arithmetic task, all built in-process (no downloads).

Must not import modeling (modeling.py builds the tiny model through this module: no cycle) or the CLI (tests/test_layers.py).

The task (docs/design.md, "The tiny demo"): the sum of K numbers of D digits.
Its reference chain of thought adds one column at a time, least significant first::

    <think>4+4+6=14
    6+9+7+1=23
    9+4+8+2=23</think>\\boxed{2334}

The SFT cold-start mixes full chains of thought with bare answers, the mix tied to a
feature of the problem (a thought 80% of the time when the first operand is in the top 30%
of its range, 20% otherwise: ``ArithmeticTask.think_probability``). The SFT model then
thinks on some problems and guesses on others; RL elicits the thinking mode it already has (paper sections 3.2 and 5), raising
accuracy as response length grows.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import string
import threading
from dataclasses import dataclass
from pathlib import Path

from slowthink.data.problems import Problem

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
    from slowthink.quiet import quiet_transformers

    quiet_transformers()
    path = Path(path)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, spec, seed)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


# ---------------------------------------------------------------- the synthetic task


@dataclass(frozen=True)
class ArithmeticTask:
    """Sum of ``num_operands`` numbers with ``digits`` digits each; difficulty grows with both."""

    num_operands: int = 3
    digits: int = 3
    # Fraction of problems held out for evaluation (chosen by a hash, so stable across seeds).
    heldout_fraction: float = 0.2
    # Cold-start mix (see think_probability): the share of the first operand's range where
    # demonstrations mostly think, and the think probabilities inside and outside it.
    think_share: float = 0.3
    think_high: float = 0.8
    think_low: float = 0.2
    # Share of thinking demonstrations that end their thought with a verification step
    # ("wait, <operands reversed>=<sum>"), so that reflection keywords can appear at all and
    # the keyword monitors of section 3.2 (Figure 4) and RRA's action count have something
    # to measure. 0 (the demo's cold start) leaves the demonstrations as they were.
    verify_probability: float = 0.0

    @property
    def low(self) -> int:
        return 10 ** (self.digits - 1)

    @property
    def high(self) -> int:
        return 10**self.digits - 1

    def question(self, operands: tuple[int, ...]) -> str:
        return "+".join(str(x) for x in operands)

    def answer(self, operands: tuple[int, ...]) -> str:
        return str(sum(operands))

    def chain_of_thought(self, operands: tuple[int, ...]) -> str:
        """One line per column, units first, with the carry added last: ``4+4+6=14``."""
        width = max(len(str(x)) for x in operands)
        lines, carry = [], 0
        for column in range(width):
            column_digits = [(x // 10**column) % 10 for x in operands]
            terms = column_digits + ([carry] if carry else [])
            total = sum(terms)
            lines.append("+".join(str(t) for t in terms) + f"={total}")
            carry = total // 10
        return "\n".join(lines)

    def verification(self, operands: tuple[int, ...]) -> str:
        """A check of the sum in the other order, opened by a reflection keyword: ``wait, 876+494+964=2334``.

        Short enough that a verified thought of 3 numbers of 3 digits still fits the demo's
        64-token responses (at most 63 tokens with the end of turn)."""
        return "wait, " + "+".join(str(x) for x in reversed(operands)) + "=" + self.answer(operands)

    def solution(self, operands: tuple[int, ...], think: bool = True, verify: bool = False) -> str:
        """The reference response: a thought (optionally verified) then a boxed answer, or a bare boxed answer."""
        boxed = "\\boxed{" + self.answer(operands) + "}"
        if not think:
            return boxed
        thought = self.chain_of_thought(operands) + ("\n" + self.verification(operands) if verify else "")
        return f"<think>{thought}</think>{boxed}"

    def is_heldout(self, operands: tuple[int, ...]) -> bool:
        digest = hashlib.sha256(self.question(operands).encode()).digest()
        return digest[0] / 256 < self.heldout_fraction

    def sample_operands(self, rng: random.Random, heldout: bool) -> tuple[int, ...]:
        while True:
            operands = tuple(rng.randint(self.low, self.high) for _ in range(self.num_operands))
            if self.is_heldout(operands) == heldout:
                return operands

    def split_size(self, heldout: bool, limit: int = 100_000) -> int | None:
        """How many distinct problems one side of the split holds; None when the task has
        more than ``limit`` operand tuples (too many to count, and never exhausted)."""
        if (self.high - self.low + 1) ** self.num_operands > limit:
            return None
        numbers = range(self.low, self.high + 1)
        return sum(self.is_heldout(ops) == heldout for ops in itertools.product(numbers, repeat=self.num_operands))

    def problems(self, count: int, seed: int, heldout: bool) -> list[Problem]:
        """``count`` distinct problems from the train (or held-out) side of the split."""
        # An easy task (e.g. one-digit numbers) has few distinct problems: asking for more
        # would make the loop below draw forever.
        available = self.split_size(heldout)
        if available is not None and count > available:
            side = "held-out" if heldout else "train"
            raise ValueError(
                f"the tiny task ({self.num_operands} numbers of {self.digits} digits) has only {available} distinct "
                f"{side} problems, {count} asked for: ask for fewer or use more digits or operands"
            )
        rng = random.Random(f"{seed}-{heldout}")
        seen: set[tuple[int, ...]] = set()
        out = []
        while len(out) < count:
            operands = self.sample_operands(rng, heldout)
            if operands in seen:
                continue
            seen.add(operands)
            out.append(
                Problem(
                    id=f"{'heldout' if heldout else 'train'}-{len(out)}",
                    problem=self.question(operands),
                    answer=self.answer(operands),
                    source="tiny-arithmetic",
                    meta={"operands": list(operands)},
                )
            )
        return out

    def think_threshold(self) -> float:
        """First-operand value from which demonstrations mostly think (top ``think_share`` of the range)."""
        return self.high - self.think_share * (self.high - self.low)

    def think_probability(self, operands: tuple[int, ...]) -> float:
        """Chance that the cold-start SFT demonstration thinks: tied to the first operand.

        Problems whose first operand lies in the top ``think_share`` of its range think with
        probability ``think_high``, the others with ``think_low``. A greedy SFT model then thinks
        on about that share of problems and answers directly (and mostly wrongly) elsewhere,
        though it has seen the reasoning mode on every kind of problem: RL's room to elicit it.
        """
        return self.think_high if operands[0] >= self.think_threshold() else self.think_low

    def sft_rows(self, count: int, seed: int, all_think: bool = False) -> list[dict]:
        """Cold-start SFT data: ``{"prompt", "response"}`` rows mixing thoughts and bare answers."""
        rng = random.Random(f"sft-{seed}")
        # A stream of its own: verify_probability = 0 draws nothing and leaves the rows as they were.
        verify_rng = random.Random(f"sft-verify-{seed}")
        rows = []
        for problem in self.problems(count, seed, heldout=False):
            operands = tuple(problem.meta["operands"])
            think = all_think or rng.random() < self.think_probability(operands)
            verify = think and self.verify_probability > 0 and verify_rng.random() < self.verify_probability
            rows.append({"prompt": problem.problem, "response": self.solution(operands, think=think, verify=verify), "answer": problem.answer})
        return rows
