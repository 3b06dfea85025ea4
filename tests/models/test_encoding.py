import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from sftvsrl.models.encoding import IGNORE_INDEX, encode_prompts, encode_sft_batch, pack_sequences
from sftvsrl.models.loading import PolicyModel, load_model


def _word_tokenizer() -> PreTrainedTokenizerFast:
    """A second, different tokenizer (whitespace words, other special ids) to prove nothing
    depends on the char tokenizer's ids."""
    words = ["[EOS]", "[PAD]", "[UNK]", "[BOS]", "USER", "BOT", "2", "3", "4", "=", "9", "hello", "x", "y"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="[BOS]", eos_token="[EOS]", pad_token="[PAD]", unk_token="[UNK]"
    )
    tok.chat_template = "{{ bos_token }}{% for m in messages %}USER {{ m['content'] }} {% endfor %}BOT "
    return tok


@pytest.fixture(params=["char", "word"])
def pm(request):
    lm = load_model("tiny-lm")
    if request.param == "word":
        return PolicyModel(model=lm.model, tokenizer=_word_tokenizer())
    return lm


def test_sft_labels_are_exactly_completion_plus_eos(pm):
    tok = pm.tokenizer
    obs, comps = ["2 3 4", "hello"], ["= 9", "x y x"]
    batch = encode_sft_batch(pm, obs, comps)
    for i, (o, c) in enumerate(zip(obs, comps, strict=True)):
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": o}], tokenize=False, add_generation_prompt=True
        )
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        c_ids = tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        n = len(p_ids) + len(c_ids)
        assert batch["input_ids"][i, :n].tolist() == p_ids + c_ids  # right padded
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (batch["input_ids"].shape[1] - n)
        labels = batch["labels"][i].tolist()
        assert labels[: len(p_ids)] == [IGNORE_INDEX] * len(p_ids)
        assert labels[len(p_ids) : n] == c_ids
        assert set(labels[n:]) <= {IGNORE_INDEX}
        assert batch["completion_mask"][i].sum().item() == len(c_ids)


def test_prompts_are_left_padded(pm):
    batch = encode_prompts(pm, ["2", "hello 2 3 4"])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert mask[1].all() and not mask[0].all()
    assert mask[0, -1] == 1 and mask[0, 0] == 0
    assert ids[0, 0].item() == pm.tokenizer.pad_token_id


def test_pack_sequences_left_side():
    out = pack_sequences([[5, 6], [7]], [[8], [9, 10]], pad_id=0, side="left")
    assert out["input_ids"].tolist() == [[5, 6, 8], [7, 9, 10]]
    out = pack_sequences([[5], [7]], [[8], [9, 10]], pad_id=0, side="left")
    assert out["input_ids"].tolist() == [[0, 5, 8], [7, 9, 10]]
    assert out["labels"].tolist() == [[-100, -100, 8], [-100, 9, 10]]


def test_vlm_prompt_expands_image_and_masks_it():
    pm = load_model("tiny-vlm")
    img = np.zeros((32, 32, 3), dtype=np.uint8)
    batch = encode_sft_batch(pm, [{"text": "hi", "image": img}], ["ab"])
    n_img = (batch["input_ids"] == pm.image_token_id).sum().item()
    assert n_img == pm.model.config.image_seq_length
    assert batch["pixel_values"].shape[0] == 1
    labelled = batch["labels"][batch["labels"] != IGNORE_INDEX].tolist()
    assert labelled == pm.tokenizer("ab", add_special_tokens=False)["input_ids"] + [pm.tokenizer.eos_token_id]
    with pytest.raises(ValueError, match="needs"):
        encode_prompts(pm, ["text only"])
