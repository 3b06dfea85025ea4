"""A character-level tokenizer for the tiny from-scratch models.

Built with `tokenizers` and wrapped as a normal HF fast tokenizer, so everything downstream
(chat template, saving, ``AutoTokenizer`` reloading, processors) treats it like any pretrained
tokenizer. One token per printable ASCII character keeps the tiny model's vocabulary small
and makes every card name, digit and operator a token of its own.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
IMAGE_TOKEN = "<image>"

# User and assistant turns; `{% generation %}` marks the assistant content so that
# `return_assistant_tokens_mask` works. The markers are plain characters on purpose: the
# tiny model learns them like any other text.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{{ 'U:' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '\\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ 'A:' }}{% generation %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ eos_token }}{% endgeneration %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'A:' }}{% endif %}"
)


def char_vocabulary() -> list[str]:
    """Special tokens first, then printable ASCII and newline (tab/CR/FF are normalised away)."""
    chars = [c for c in string.printable if c not in "\t\r\x0b\x0c"]
    return [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, IMAGE_TOKEN, *chars]


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """Build the character tokenizer from scratch (deterministic, no files needed)."""
    vocab = {tok: i for i, tok in enumerate(char_vocabulary())}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(""), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        model_max_length=1024,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok
