"""A trainer state written on a GPU loads on the CPU, memory-mapped, wherever the loading rank runs.

``torch.load`` without ``map_location`` puts every tensor back on the device it was saved
from: under DDP all ranks of a GPU-trained run would load the AdamW moments (and the
reference) onto ``cuda:0``. The GPU is simulated by tagging the saved storages ``cuda:0``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slowthink.training.checkpoint import load_trainer_state


def save_as_if_on_gpu(state: dict, path, monkeypatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(state, path)


def test_a_state_saved_on_a_gpu_loads_on_the_cpu(tmp_path, monkeypatch):
    moments = {"exp_avg": torch.arange(6.0).view(2, 3), "exp_avg_sq": torch.full((2, 3), 0.5)}
    save_as_if_on_gpu({"step": 3, "optimizer": {"state": {0: moments}}}, tmp_path / "trainer_state.pt", monkeypatch)
    loaded = load_trainer_state(tmp_path)
    assert loaded["step"] == 3
    for name, value in moments.items():
        assert loaded["optimizer"]["state"][0][name].device == torch.device("cpu")
        assert torch.equal(loaded["optimizer"]["state"][0][name], value)


def test_the_state_is_memory_mapped_not_read_into_memory(tmp_path):
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        pytest.skip("no /proc/self/maps to find the mapping in")
    torch.save({"reference": {"w": torch.ones(1 << 16)}}, tmp_path / "trainer_state.pt")
    weight = load_trainer_state(tmp_path)["reference"]["w"]
    # A memory-mapped tensor's bytes lie in a mapping of the file: the ranks of a node share its pages.
    address = weight.data_ptr()
    backing = [line.split()[-1] for line in maps.read_text().splitlines() if _contains(line, address)]
    assert backing == [str(tmp_path / "trainer_state.pt")]


def _contains(maps_line: str, address: int) -> bool:
    start, stop = (int(x, 16) for x in maps_line.split()[0].split("-"))
    return start <= address < stop
