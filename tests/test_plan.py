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
