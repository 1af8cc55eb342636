"""Model loading: the tiny default, local directories, and errors that name the path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slowthink.models.modeling import (
    ModelLoadError,
    load_model,
    load_model_and_tokenizer,
    load_tokenizer,
    resolve_model_path,
    set_torch_threads,
    tiny_path,
)
from slowthink.models.tiny import tiny_fingerprint

torch.set_num_threads(1)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SLOWTHINK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("path", ["./nope", "/nonexistent/model", "~/nonexistent-slowthink-model", "a/b/c"])
@pytest.mark.parametrize("loader", [load_model, load_tokenizer])
def test_missing_local_path_names_the_path(path, loader):
    with pytest.raises(ModelLoadError, match=f"model path not found: {path}"):
        loader(path)


def test_directory_without_config_json(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError, match=f"model path {tmp_path} has no config.json"):
        load_model(str(tmp_path))
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_tokenizer(str(tmp_path))


def test_hub_names_pass_through_unchanged():
    # 'org/name' is a hub id (nothing is downloaded by resolving it).
    assert resolve_model_path("Qwen/Qwen2.5-Math-1.5B") == "Qwen/Qwen2.5-Math-1.5B"


def test_tiny_resolves_builds_once_and_loads(cache):
    path = resolve_model_path("tiny")
    assert path == str(cache / f"tiny-qwen2-{tiny_fingerprint()}")
    config_mtime = (Path(path) / "config.json").stat().st_mtime_ns
    assert tiny_path() == tiny_path(cache) and str(tiny_path()) == path
    # The second use finds the saved copy instead of rebuilding it; no temp dirs are left.
    assert (Path(path) / "config.json").stat().st_mtime_ns == config_mtime
    assert [p.name for p in cache.iterdir()] == [f"tiny-qwen2-{tiny_fingerprint()}"]

    model, tokenizer = load_model_and_tokenizer("tiny")
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert next(model.parameters()).dtype == torch.float32
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id is not None
    assert model.config.vocab_size == len(tokenizer)
    ids = tokenizer.encode("<|user|>1+2<|assistant|>", add_special_tokens=False)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(tokenizer)) and torch.isfinite(logits).all()


def test_a_local_directory_loads_with_dtype(cache):
    path = resolve_model_path("tiny")
    model = load_model(path, dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16


def test_set_torch_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert set_torch_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("SLOWTHINK_TORCH_THREADS", "2")
        assert set_torch_threads() == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("loader", [load_model, load_tokenizer])
def test_unknown_hub_name_says_it_is_no_local_directory(loader, monkeypatch):
    # Offline, so the hub lookup fails at once instead of retrying the network.
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"from 'runs/nope' \(no such local directory; tried as a Hugging Face hub name\)"):
        loader("runs/nope")
