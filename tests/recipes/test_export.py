"""``slowthink export``: a checkpoint becomes a Hugging Face folder that plain transformers (or
peft) loads and that decodes what the trained policy decodes, with a model card; --push-to-hub
is followed up to the network call."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.config import load_config
from slowthink.recipes.export import final_metrics
from slowthink.recipes.sft import SFTConfig, run_sft
from slowthink.training.checkpoint import latest_checkpoint, load_weights
from slowthink.training.run_setup import load_policy

SFT = ["run.torch_threads=1", "run.progress=false", "data.tiny_size=32", "train.batch_size=4", "train.micro_batch_size=2", "optim.warmup_steps=0"]
PROMPTS = ["<|user|>12+7<|assistant|>", "<|user|>3+45<|assistant|>", "<|user|>908+1<|assistant|>"]


def _run(tmp_path_factory, name: str, *overrides: str) -> tuple[SFTConfig, object]:
    out = tmp_path_factory.mktemp(name) / "run"
    config = load_config(SFTConfig, None, [f"run.output_dir={out}", *SFT, "train.steps=3", "optim.lr=0.02", *overrides])
    return config, run_sft(config)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    return _run(tmp_path_factory, "lora", "model.lora.r=4", "model.lora.alpha=16")


def _export(*args: str):
    return CliRunner().invoke(app, ["export", *args])


def _greedy(model, tokenizer) -> list[list[int]]:
    model.eval()
    outputs = []
    for prompt in PROMPTS:
        ids = torch.tensor([tokenizer.encode(prompt, add_special_tokens=False)])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=16, pad_token_id=tokenizer.pad_token_id)
        outputs.append(out[0, ids.shape[1] :].tolist())
    return outputs


def test_merged_export_loads_in_plain_transformers_and_decodes_as_the_policy(lora_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config, run_dir = lora_run
    result = _export(str(run_dir), "--out", str(tmp_path / "merged"), "--merge")
    assert result.exit_code == 0, result.output
    out = tmp_path / "merged"
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= names
    assert not names & {"trainer_state.pt", "manifest.json", "adapter_config.json", "adapter_model.safetensors"}

    exported = AutoModelForCausalLM.from_pretrained(out)  # plain transformers: no peft, no slowthink
    tokenizer = AutoTokenizer.from_pretrained(out)
    policy, policy_tokenizer = load_policy(config.model)  # the base with the run's adapter, as training holds it
    load_weights(policy, latest_checkpoint(run_dir))
    assert _greedy(exported, tokenizer) == _greedy(policy, policy_tokenizer)
    base, _ = load_policy(config.model.model_copy(update={"lora": config.model.lora.model_copy(update={"r": 0})}))
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(exported.state_dict()[q], base.state_dict()[q])  # the adapter is merged in

    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\n")
    assert "## Training config" in card and "lora:\n    r: 4\n" in card and "lr: 0.02" in card
    final_loss = final_metrics(run_dir / "metrics.jsonl")["loss"]
    assert final_loss[0] == 3 and f"| loss | {final_loss[1]:.6g} | 3 |" in card


def test_adapter_export_is_what_peft_loads_onto_the_base(lora_run, tmp_path):
    from peft import PeftModel

    config, run_dir = lora_run
    checkpoint = latest_checkpoint(run_dir)
    result = _export(str(checkpoint), "--out", str(tmp_path / "adapter"))
    assert result.exit_code == 0, result.output
    out = tmp_path / "adapter"
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json"} <= names
    assert "model.safetensors" not in names and "trainer_state.pt" not in names
    base, _ = load_policy(config.model.model_copy(update={"lora": config.model.lora.model_copy(update={"r": 0})}))
    loaded = PeftModel.from_pretrained(base, str(out))
    saved = load_file(checkpoint / "adapter_model.safetensors")
    state = loaded.state_dict()
    assert all(torch.equal(state[k.replace(".weight", ".default.weight")], v) for k, v in saved.items())
    assert "library_name: peft" in (out / "README.md").read_text()


def test_full_weights_export_equals_the_checkpoint(tmp_path_factory, tmp_path):
    from transformers import AutoModelForCausalLM

    _, run_dir = _run(tmp_path_factory, "full")
    result = _export(str(run_dir), "--out", str(tmp_path / "full"), "--merge")  # nothing to merge: the weights as they are
    assert result.exit_code == 0, result.output
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "full").state_dict()
    saved = load_file(latest_checkpoint(run_dir) / "model.safetensors")
    assert saved and all(torch.equal(exported[k], v) for k, v in saved.items())
    assert "tags:\n- slowthink\n- sft\n---" in (tmp_path / "full" / "README.md").read_text()


def test_push_to_hub_uploads_the_exported_folder(lora_run, tmp_path, monkeypatch):
    import httpx
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, *, folder_path, repo_id, **kwargs):
        # What would go up: the folder's files at the moment of the call.
        calls.append(("upload_folder", repo_id, sorted(p.name for p in (tmp_path / "hub").iterdir()), folder_path))
        return "https://huggingface.co/me/tiny-lora/commit/abc"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    _, run_dir = lora_run
    result = _export(str(run_dir), "--out", str(tmp_path / "hub"), "--merge", "--push-to-hub", "me/tiny-lora", "--private")
    assert result.exit_code == 0, result.output
    assert calls[0] == ("create_repo", "me/tiny-lora", {"private": True, "exist_ok": True})
    assert calls[1][:2] == ("upload_folder", "me/tiny-lora") and calls[1][3] == str(tmp_path / "hub")
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json"} <= set(calls[1][2])
    assert "commit/abc" in result.output

    # A refused token and no network at all: exit 1 naming the repo, the exported folder kept.
    request = httpx.Request("POST", "https://huggingface.co/api/models/me/tiny-lora/commit/main")
    failures = {
        "Unauthorized": HfHubHTTPError("401 Client Error: Unauthorized", response=httpx.Response(401, request=request)),
        "Network is unreachable": httpx.ConnectError("[Errno 101] Network is unreachable", request=request),
    }
    for i, (message, error) in enumerate(failures.items()):

        def fails(self, error=error, **kwargs):
            raise error

        monkeypatch.setattr(HfApi, "upload_folder", fails)
        result = _export(str(run_dir), "--out", str(tmp_path / f"hub{i}"), "--push-to-hub", "me/tiny-lora")
        assert result.exit_code == 1, result.output
        assert "upload of" in result.output and "to me/tiny-lora failed" in result.output and message in result.output
        assert (tmp_path / f"hub{i}" / "adapter_model.safetensors").is_file()  # nothing lost


def test_bad_paths_exit_2_naming_them(lora_run, tmp_path):
    _, run_dir = lora_run
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    result = _export(str(run_dir), "--out", str(tmp_path / "taken"))
    assert result.exit_code == 2 and f"--out {tmp_path / 'taken'} exists and is not an empty folder" in result.output
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    result = _export(str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"))
    assert result.exit_code == 2 and f"{tmp_path / 'nowhere'} is neither a checkpoint" in result.output
    assert not (tmp_path / "x").exists()


def test_a_checkpoint_without_weights_is_refused(tmp_path):
    checkpoint = tmp_path / "run" / "checkpoints" / "step_000002"
    (checkpoint / "sharded").mkdir(parents=True)  # no shard index (.metadata): no weights either
    torch.save({"step": 2}, checkpoint / "trainer_state.pt")
    result = _export(str(checkpoint), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert f"{checkpoint} holds no weights to export" in result.output
    assert not (tmp_path / "out").exists()
