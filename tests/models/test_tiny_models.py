import numpy as np
import pytest
import torch

from sftvsrl.models.encoding import encode_prompts, encode_sft_batch
from sftvsrl.models.loading import LoraSettings, load_model, save_model

IMG = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)


def _model_inputs(batch):
    return {k: v for k, v in batch.items() if k != "completion_mask"}


@pytest.mark.parametrize("name", ["tiny-lm", "tiny-vlm"])
def test_forward_generate_save_reload(name, tmp_path):
    pm = load_model(name)
    assert pm.is_vision == (name == "tiny-vlm")
    assert 1_000_000 < pm.n_params < 10_000_000
    obs = (
        [{"text": "2 3 4", "image": IMG}, {"text": "hello", "image": IMG}]
        if pm.is_vision
        else ["2 3 4", "hello"]
    )
    batch = encode_sft_batch(pm, obs, ["9", "xy"])
    out = pm.model(**_model_inputs(batch))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    prompts = encode_prompts(pm, obs)
    gen = pm.model.generate(**prompts, max_new_tokens=4, do_sample=False, **pm.generation_kwargs())
    assert gen.shape[1] <= prompts["input_ids"].shape[1] + 4
    save_model(pm, tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.is_vision == pm.is_vision
    with torch.no_grad():
        assert torch.equal(
            again.model(**_model_inputs(batch)).logits, pm.model(**_model_inputs(batch)).logits
        )


def test_seeded_build_is_deterministic():
    a, b, c = load_model("tiny-lm", seed=1), load_model("tiny-lm", seed=1), load_model("tiny-lm", seed=2)
    wa, wb, wc = (next(iter(m.model.parameters())) for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_lora_hits_only_the_language_model(tmp_path):
    pm = load_model("tiny-vlm", lora=LoraSettings(r=4, target_modules=["q_proj", "v_proj"]))
    trainable = [n for n, p in pm.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)
    lora_modules = [
        n for n, _ in pm.model.named_modules() if n.endswith(("q_proj", "v_proj")) and "lora" not in n
    ]
    vision = [n for n in lora_modules if "vision" in n]
    assert vision  # the vision tower has q_proj/v_proj too ...
    for n, m in pm.model.named_modules():  # ... and none of them got adapters
        if n in vision:
            assert not hasattr(m, "lora_A")
    # perturb the adapters so that the reload check is not trivially true (B starts at zero)
    with torch.no_grad():
        for n, p in pm.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    save_model(pm, tmp_path / "lora")
    again = load_model(tmp_path / "lora")
    batch = _model_inputs(encode_sft_batch(pm, [{"text": "a", "image": IMG}], ["b"]))
    with torch.no_grad():
        assert torch.allclose(again.model(**batch).logits, pm.model(**batch).logits, atol=1e-6)
    assert any(p.requires_grad for p in again.model.parameters())


def test_missing_model_folder_is_a_clear_error(tmp_path):
    from sftvsrl.config import ConfigError

    with pytest.raises(ConfigError, match="model not found"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        load_model(tmp_path / "empty")
