"""The memory model (slowthink/plan.py): parameter counts of real models, how each setting moves
each term, and the advice it gives. Its agreement with measured peak RSS is in bench/RESULTS.md
(bench/bench_memory_model.py)."""

from __future__ import annotations

import pytest

from slowthink.plan import KNOWN_MODELS, ModelShape, RunShape, advice, estimate, reference_bytes, training_state

GB = 1e9


@pytest.mark.parametrize(
    "name,parameters",
    [
        # The counts transformers reports for these checkpoints (sum of numel, tied weights once).
        ("Qwen/Qwen2.5-0.5B", 494_032_768),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 1_777_088_000),
        ("Qwen/Qwen2.5-7B", 7_615_616_512),
        ("Qwen/Qwen2.5-32B", 32_763_876_352),
    ],
)
def test_parameter_counts_match_the_real_checkpoints(name, parameters):
    assert KNOWN_MODELS[name].parameters == parameters


def test_parameter_count_of_the_tiny_model_matches_torch():
    from slowthink.models.tiny import TinyModelSpec, build_model, build_tokenizer

    spec = TinyModelSpec()
    model = build_model(build_tokenizer(), spec, seed=0)
    shape = ModelShape.from_hf_config(model.config.to_dict())
    assert shape.parameters == sum(p.numel() for p in model.parameters())


def test_fsdp_divides_the_training_state_and_shards_the_reference_in_its_compute_dtype():
    model = KNOWN_MODELS["Qwen/Qwen2.5-7B"]
    ddp = RunShape(ranks=8, strategy="ddp", reference=True)
    fsdp = RunShape(ranks=8, strategy="fsdp", reference=True, compute_bytes=2)
    assert sum(training_state(model, ddp).values()) == 16 * model.parameters
    assert sum(training_state(model, fsdp).values()) == 16 * model.parameters / 8
    assert reference_bytes(model, ddp) == 4 * model.parameters  # a full fp32 copy per GPU
    assert reference_bytes(model, fsdp) == 2 * model.parameters / 8  # bf16, sharded


def test_checkpointing_and_chunking_shrink_the_update_and_not_the_state():
    model = KNOWN_MODELS["deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"]
    plain = RunShape(sequence=16384, logprob_chunk=0)
    cheap = RunShape(sequence=16384, logprob_chunk=1024, gradient_checkpointing=True)
    a, b = estimate(model, plain), estimate(model, cheap)
    assert a.parts["weights"] == b.parts["weights"]
    # Unchunked: three fp32 tensors of T x V (eight with the entropy); chunked: two of chunk x V.
    assert a.parts["logits"] == 3 * 16384 * model.vocab * 4 and b.parts["logits"] == 2 * 1024 * model.vocab * 4
    assert estimate(model, RunShape(sequence=16384, logprob_chunk=0, entropy=True)).parts["logits"] == 8 * 16384 * model.vocab * 4
    # Checkpointing keeps one H-wide value per token per layer instead of ~10 H + 3 KV + 4 I.
    assert b.parts["activations"] < a.parts["activations"] / 20
    assert b.update_peak < a.update_peak


def test_a_run_that_fits_gets_no_advice_and_one_that_does_not_is_told_what_to_change():
    model = KNOWN_MODELS["Qwen/Qwen2.5-32B"]
    base = dict(
        strategy="fsdp",
        master_bytes=4,
        compute_bytes=2,
        sequence=21000,
        gradient_checkpointing=True,
        vllm=True,
        gpu_memory_utilization=0.55,
        tensor_parallel=4,
    )
    assert advice(model, RunShape(ranks=16, **base), 80 * GB) == []
    tips = advice(model, RunShape(ranks=8, **base), 80 * GB)
    assert any("16" in tip for tip in tips) and any("gpu_memory_utilization" in tip for tip in tips)
    plain = advice(model, RunShape(ranks=16, **{**base, "gradient_checkpointing": False, "micro_batch": 4}), 80 * GB)
    assert "model.gradient_checkpointing=true" in plain and "update.micro_batch_size=2" in plain


def test_vllm_kv_cache_is_what_the_engine_share_leaves_after_its_weights():
    model = KNOWN_MODELS["deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"]
    result = estimate(model, RunShape(vllm=True, gpu_memory_utilization=0.45), 85 * GB)
    assert result.parts["vllm weights"] == 2 * model.parameters
    assert result.parts["kv cache"] == pytest.approx(0.45 * 85 * GB - 2 * model.parameters)
    assert model.kv_bytes_per_token() == 2 * 28 * 2 * 128 * 2  # 28 KiB a token
    assert result.kv_tokens == pytest.approx(result.parts["kv cache"] / model.kv_bytes_per_token())


def test_plan_command_says_whether_the_32b_preset_fits_and_what_to_change():
    from pathlib import Path

    from typer.testing import CliRunner

    from slowthink.cli import app

    preset = str(Path(__file__).parents[1] / "configs" / "paper_still3_zero_32b.yaml")
    one_node = CliRunner().invoke(app, ["plan", preset, "--gpus", "8", "--gpu-memory", "80GB", "--prompt-tokens", "512"])
    assert one_node.exit_code == 0, one_node.output
    assert "32.76 B parameters" in one_node.output and "does not fit 80 GB" in one_node.output
    assert "more GPUs: 16" in one_node.output
    two_nodes = CliRunner().invoke(app, ["plan", preset, "--gpus", "16", "--gpu-memory", "80GB", "--prompt-tokens", "512"])
    assert "fits 80 GB" in two_nodes.output and "does not fit" not in two_nodes.output
    bad = CliRunner().invoke(app, ["plan", preset, "--gpu-memory", "lots"])
    assert bad.exit_code == 2 and "--gpu-memory 'lots'" in bad.output


def test_the_tables_in_docs_scale_are_the_plan_commands_current_output():
    import re
    import shlex
    from pathlib import Path

    from typer.testing import CliRunner

    from slowthink.cli import app

    root = Path(__file__).parents[1]
    doc = (root / "docs" / "scale.md").read_text()
    commands = re.findall(r"```\n\$ slowthink plan (.+)\n```\n\n", doc)
    assert len(commands) >= 3, "docs/scale.md shows slowthink plan's tables"
    for command in commands:
        args = [str(root / a) if a.startswith("configs/") else a for a in shlex.split(command)]
        result = CliRunner().invoke(app, ["plan", *args])
        assert result.exit_code == 0, result.output
        shown = f"```\n$ slowthink plan {command}\n```\n\n{result.output.rstrip()}\n"
        assert shown in doc, f"docs/scale.md: the output of `slowthink plan {command}` changed; paste it again"


# A model small enough to count by hand: V x H = 64,000 values, one chunk's logits 128 x V.
SMALL = ModelShape(layers=2, hidden=64, intermediate=256, vocab=1000, heads=4, kv_heads=2, tied=True)
VH = 1000 * 64


def test_ddp_counts_its_buckets_once_and_the_head_gradient_only_beside_a_second_chunk():
    from slowthink.plan import activations

    one_chunk = RunShape(ranks=2, strategy="ddp", sequence=100, logprob_chunk=128, foreach_optimizer=False)
    state = 16 * SMALL.parameters  # weights, DDP's buckets (the one copy of the gradients), two moments
    acts = activations(SMALL, one_chunk)
    # One chunk: its two fp32 100 x V tensors are the head's peak; the V x H weight gradient
    # comes after the first of them is freed (100 x V + V x H < 2 x 100 x V), and no other
    # chunk's gradient is waiting beside it.
    assert estimate(SMALL, one_chunk).update_peak == state + acts + 2 * 100 * 1000 * 4
    # Two chunks (200 tokens): the first chunk's V x H gradient sits beside the second's logits.
    two_chunks = RunShape(ranks=2, strategy="ddp", sequence=200, logprob_chunk=128, foreach_optimizer=False)
    acts = activations(SMALL, two_chunks)
    assert estimate(SMALL, two_chunks).update_peak == state + acts + 2 * 128 * 1000 * 4 + VH * 4


def test_the_head_gradient_is_in_the_dtype_of_the_weight_the_head_computes_with():
    from slowthink.plan import gradients_at_the_end, head_gradient, head_working, training_state

    # Autocast: the bf16 product is cast back to the fp32 master weight's dtype.
    autocast = RunShape(master_bytes=4, compute_bytes=2, sequence=256, logprob_chunk=128)
    assert head_gradient(SMALL, autocast) == VH * 4
    # Its chunk's backward: two fp32 128 x V tensors, or the bf16 logits' gradient beside the
    # bf16 product and its fp32 cast; the other chunk's fp32 sum beside either.
    assert head_working(SMALL, autocast) == max(2 * 128 * 1000 * 4, 128 * 1000 * 2 + VH * (2 + 4)) + VH * 4
    # FSDP2: the unsharded weight is in param_dtype, and so is its gradient until the reduce-scatter.
    fsdp = RunShape(ranks=4, strategy="fsdp", master_bytes=4, compute_bytes=2)
    assert head_gradient(SMALL, fsdp) == VH * 2
    # The backward's end: a single process holds every gradient and, tied, the embeddings' V x H
    # beside the head's; DDP only that pair (the rest is in its buckets); FSDP2 its shards and the root's pair.
    single = RunShape()
    assert gradients_at_the_end(SMALL, single, training_state(SMALL, single)) == 4 * SMALL.parameters + VH * 4
    ddp = RunShape(ranks=2, strategy="ddp")
    assert gradients_at_the_end(SMALL, ddp, training_state(SMALL, ddp)) == 2 * VH * 4
    assert gradients_at_the_end(SMALL, fsdp, training_state(SMALL, fsdp)) == 4 * SMALL.parameters / 4 + 2 * VH * 2


def test_gradients_accumulated_over_micro_batches_sit_beside_the_next_backward():
    from slowthink.plan import activations

    common = dict(sequence=100, logprob_chunk=128, foreach_optimizer=False, micro_batches=2)
    head = 2 * 100 * 1000 * 4  # one chunk's two fp32 100 x V tensors
    # RL under DDP: no_sync accumulates into .grad tensors of their own, a second copy beside the buckets.
    rl = RunShape(ranks=2, strategy="ddp", **common)
    assert estimate(SMALL, rl).update_peak == 16 * SMALL.parameters + 4 * SMALL.parameters + activations(SMALL, rl) + head
    assert estimate(SMALL, rl).parts["gradients beside the buckets (no_sync)"] == 4 * SMALL.parameters
    # SFT under DDP all-reduces every micro-batch: from the first on, .grad is a view of the buckets.
    sft = RunShape(ranks=2, strategy="ddp", sync_every_micro_batch=True, **common)
    assert estimate(SMALL, sft).update_peak == 16 * SMALL.parameters + activations(SMALL, sft) + head
    # One process: the sum so far (4 P) beside the second micro-batch's activations.
    single = RunShape(**common)
    assert estimate(SMALL, single).update_peak == 12 * SMALL.parameters + 4 * SMALL.parameters + activations(SMALL, single) + head


def _gradient_storages(rank: int, port: int, out: dict) -> None:
    """How many storages the parameters' .grad use, inside no_sync and after the synced backward."""
    from spawn_helpers import gloo_group

    with gloo_group(rank, 2, port):
        out[rank] = _storages_over_two_steps(rank)


def _storages_over_two_steps(rank: int) -> list[tuple[int, int]]:
    import torch

    from slowthink.training.distributed import DistInfo, wrap_model

    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8))
    ddp = wrap_model(model, DistInfo(rank, 2))  # the project's DDP settings
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randn(2, 8)
    seen = []
    for _ in range(2):  # the second step is past DDP's bucket rebuild
        optimizer.zero_grad(set_to_none=True)
        with ddp.no_sync():
            ddp(x).sum().backward()
        inside = len({p.grad.untyped_storage().data_ptr() for p in model.parameters()})
        ddp(x).sum().backward()
        seen.append((inside, len({p.grad.untyped_storage().data_ptr() for p in model.parameters()})))
        optimizer.step()
    return seen


def test_ddp_accumulates_no_sync_gradients_outside_its_buckets():
    """The premise of the no_sync term: inside no_sync each .grad is a tensor of its own (4 storages
    for 4 parameters), beside the buckets; the synced backward makes them views of one bucket."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from spawn_helpers import free_port, spawn_with_deadline

    out = spawn_with_deadline(_gradient_storages, (free_port(),), 120, "2 gloo ranks did not finish a DDP step in 120 s")
    assert out[0] == out[1] == [(4, 1), (4, 1)]


def test_the_plan_command_counts_a_ranks_micro_batches_per_optimizer_step():
    from pathlib import Path

    from slowthink.cli.plan import run_shape_of
    from slowthink.config import load_config
    from slowthink.recipes.rl_config import RLConfig

    preset = Path(__file__).parents[1] / "configs" / "paper_still3_1.5b.yaml"
    # 64 prompts per update x 8 rollouts = 512 rows over 8 GPUs: 64 rows, 16 micro-batches of 4.
    run = run_shape_of(load_config(RLConfig, preset, []), 8, 1024)
    assert (run.micro_batches, run.sync_every_micro_batch) == (16, False)
    one = run_shape_of(load_config(RLConfig, preset, ["update.micro_batch_size=64"]), 8, 1024)
    assert one.micro_batches == 1
    # One micro-batch per step: no gradients wait beside the backward.
    assert estimate(KNOWN_MODELS["deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"], one).parts["gradients beside the buckets (no_sync)"] == 0


def test_plan_of_an_sft_config_names_sfts_micro_batch_key():
    from pathlib import Path

    from typer.testing import CliRunner

    from slowthink.cli import app

    sft = str(Path(__file__).parents[1] / "configs" / "tiny_sft.yaml")
    result = CliRunner().invoke(app, ["plan", sft, "--gpus", "2", "model.path=Qwen/Qwen2.5-1.5B"])
    assert result.exit_code == 0, result.output
    assert "change: train.micro_batch_size=32" in result.output and "update.micro_batch_size" not in result.output
