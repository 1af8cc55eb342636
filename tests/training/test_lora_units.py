"""LoRA pieces (training/lora.py): merged weights, the adapter-off reference, the fast path,
checkpoint loading and the config's refusals."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

from slowthink.config import ConfigError, load_config
from slowthink.durable import CheckpointError
from slowthink.models.tiny import build_tokenizer
from slowthink.recipes.common_config import LoraConfig
from slowthink.recipes.rl_config import RLConfig
from slowthink.recipes.sft import SFTConfig
from slowthink.rollout.generator import SamplingParams
from slowthink.rollout.hf import HFGenerator
from slowthink.training.checkpoint import load_weights
from slowthink.training.lora import AdapterOff, apply_lora, is_lora, load_adapter, merged_weights

sys.path.insert(0, str(Path(__file__).parents[1] / "rollout"))
from test_hf import QUESTIONS, varied_model  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def lora_model(tokenizer, r: int = 4):
    """A varied tiny model with adapters whose B is drawn too (a fresh B is zero: no effect)."""
    torch.manual_seed(0)
    model = apply_lora(varied_model(tokenizer, seed=0), LoraConfig(r=r, alpha=2 * r))
    rng = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=rng) * 0.1)
    return model.eval()


def _ids(tokenizer) -> torch.Tensor:
    return torch.tensor([tokenizer.encode(f"<|user|>{QUESTIONS[1]}<|assistant|>", add_special_tokens=False)])


def test_only_the_adapters_train(tokenizer):
    model = lora_model(tokenizer)
    assert is_lora(model) and not is_lora(varied_model(tokenizer, seed=0))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    # 2 layers x 7 projections x (A, B)
    assert len(trainable) == 2 * 7 * 2


def test_merged_weights_equal_peft_merge_and_leave_the_base_untouched(tokenizer):
    model = lora_model(tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    merged = dict(merged_weights(model))
    expected = copy.deepcopy(model).merge_and_unload().state_dict()
    assert merged.keys() == expected.keys()  # the base model's Hugging Face names, nothing of peft's
    for name in expected:
        torch.testing.assert_close(merged[name], expected[name], rtol=0, atol=1e-6, msg=name)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(merged[q], varied_model(tokenizer, seed=0).state_dict()[q])  # the adapter is in
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # A plain model holding the merged weights computes what the adapted one does.
    plain = varied_model(tokenizer, seed=0)
    plain.load_state_dict(merged)
    torch.testing.assert_close(plain(_ids(tokenizer)).logits, model(_ids(tokenizer)).logits, rtol=1e-4, atol=1e-4)


def test_adapter_off_reference_is_exactly_the_base_model(tokenizer):
    model, base = lora_model(tokenizer), varied_model(tokenizer, seed=0)
    ids = _ids(tokenizer)
    with torch.no_grad():
        policy_before = model(ids).logits
        reference = AdapterOff(model)(input_ids=ids).logits
        policy_after = model(ids).logits
    assert torch.equal(reference, base(ids).logits)
    assert not torch.allclose(reference, policy_before, atol=1e-3)  # the adapter matters
    assert torch.equal(policy_after, policy_before)  # and is back on after the reference's forward
    assert AdapterOff(model).get_decoder() is model.get_decoder()  # same module: no copy


def test_fast_path_decodes_the_adapted_weights(tokenizer):
    model = lora_model(tokenizer)
    plain = varied_model(tokenizer, seed=0).eval()
    plain.load_state_dict(dict(merged_weights(model)))
    prompts = [tokenizer.encode(f"<|user|>{q}<|assistant|>", add_special_tokens=False) for q in QUESTIONS]
    params = SamplingParams(temperature=0.0, max_new_tokens=12)
    adapted = HFGenerator(model, tokenizer)
    assert adapted.generic_reason is None  # a peft model takes the fast path
    lora_out = adapted.generate(prompts, params)
    merged_out = HFGenerator(plain, tokenizer).generate(prompts, params)
    base_out = HFGenerator(varied_model(tokenizer, seed=0).eval(), tokenizer).generate(prompts, params)
    assert [c.token_ids for c in lora_out] == [c.token_ids for c in merged_out]
    assert [c.logprobs for c in lora_out] == [c.logprobs for c in merged_out]
    assert [c.logprobs for c in lora_out] != [c.logprobs for c in base_out]


def test_unknown_target_modules_are_refused_naming_the_key(tokenizer):
    with pytest.raises(ConfigError, match=r"model.lora.target_modules: \['qkv'\].*q_proj"):
        apply_lora(varied_model(tokenizer, seed=0), LoraConfig(r=4, target_modules=["q_proj", "qkv"]))


def test_config_rejects_unknown_keys_and_what_lora_cannot_do():
    assert not load_config(RLConfig).model.lora.enabled  # off by default
    with pytest.raises(Exception, match=r"model.lora.rank"):
        load_config(RLConfig, None, ["model.lora.rank=4"])
    refused = {
        "kl.reference_reset_every": ["kl.mode=fixed", "kl.reference_reset_every=2"],
        "distributed.strategy=ddp only": ["distributed.strategy=fsdp"],
        "model.optimizer_state": ["model.optimizer_state=runs/sft/checkpoints/step_000010"],
        "sync_weights_every=1": ["rollout.backend=vllm", "rollout.sync_weights_every=2", "algorithm.old_logprobs=rollout"],
    }
    for message, overrides in refused.items():
        with pytest.raises(Exception, match=message):
            load_config(RLConfig, None, ["model.lora.r=4", *overrides])
    with pytest.raises(Exception, match="distributed.strategy=ddp only"):
        load_config(SFTConfig, None, ["model.lora.r=4", "distributed.strategy=fsdp"])
    with pytest.raises(Exception, match="model.lora.dropout"):
        load_config(SFTConfig, None, ["model.lora.dropout=1.5"])


def test_a_checkpoint_that_does_not_fit_names_its_file(tokenizer, tmp_path):
    model = lora_model(tokenizer)
    with pytest.raises(CheckpointError, match="holds no LoRA adapter"):
        load_adapter(model, tmp_path)  # a checkpoint of a run without model.lora
    model.save_pretrained(tmp_path / "r4")
    with pytest.raises(CheckpointError, match=r"r8/adapter_model.safetensors does not fit model.lora"):
        wider = lora_model(tokenizer, r=8)
        wider.save_pretrained(tmp_path / "r8")
        load_adapter(model, tmp_path / "r8")
    with pytest.raises(CheckpointError, match="holds a LoRA adapter, not full weights"):
        load_weights(varied_model(tokenizer, seed=0), tmp_path / "r4")
    fresh = apply_lora(varied_model(tokenizer, seed=0), LoraConfig(r=4, alpha=8))
    load_weights(fresh, tmp_path / "r4")  # through the checkpoint module: the adapter comes back
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))


def test_a_lora_checkpoint_as_a_model_path_says_how_to_merge_it(tokenizer, tmp_path):
    from slowthink.models.modeling import ModelLoadError, resolve_model_path

    lora_model(tokenizer).save_pretrained(tmp_path / "step_000004")
    with pytest.raises(ModelLoadError, match=r"step_000004 is a LoRA adapter checkpoint.*slowthink export .*step_000004 --out DIR --merge"):
        resolve_model_path(str(tmp_path / "step_000004"))


def test_a_checkpoint_of_a_hub_base_never_asks_the_hub(tokenizer, tmp_path, monkeypatch):
    import peft.utils.save_and_load as peft_saving

    from slowthink.training.checkpoint import save_checkpoint

    def asked(*args, **kwargs):
        raise AssertionError("a checkpoint asked the Hub about its base model")

    monkeypatch.setattr(peft_saving, "check_file_exists_on_hf_hub", asked)
    model = lora_model(tokenizer)
    model.peft_config["default"].base_model_name_or_path = "Qwen/Qwen2.5-1.5B"  # a hub base, as on a cluster
    checkpoint = save_checkpoint(tmp_path, 1, model, None, {"step": 1})
    assert (checkpoint / "adapter_model.safetensors").is_file()
