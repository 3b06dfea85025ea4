from transformers import AutoTokenizer

from sftvsrl.models.tokenizer import build_char_tokenizer


def test_round_trip_and_reload(tmp_path):
    tok = build_char_tokenizer()
    text = "Cards: ['A', '10', 'K']\n{\"formula\": \"(1+2)*8\"} ~|"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # one token per character
    assert tok.decode(ids) == text
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert again(text, add_special_tokens=False)["input_ids"] == ids
    assert again.image_token_id == tok.image_token_id
    assert (again.bos_token_id, again.eos_token_id, again.pad_token_id) == (
        tok.bos_token_id,
        tok.eos_token_id,
        tok.pad_token_id,
    )
    assert again.chat_template == tok.chat_template


def test_image_token_is_one_special_token():
    tok = build_char_tokenizer()
    ids = tok("a<image>b", add_special_tokens=False)["input_ids"]
    assert ids == [tok.convert_tokens_to_ids("a"), tok.image_token_id, tok.convert_tokens_to_ids("b")]


def test_chat_template_marks_assistant_tokens():
    tok = build_char_tokenizer()
    messages = [{"role": "user", "content": "2 3"}, {"role": "assistant", "content": "6"}]
    out = tok.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    marked = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tok.decode(marked[:-1]) == "6"
    assert marked[-1] == tok.eos_token_id
    prompt = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(messages, tokenize=False)
    assert full.startswith(prompt)
