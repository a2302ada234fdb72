"""Hugging Face causal language models and their tokenizers: by Hub name, or built from a config with no download.

transformers is imported inside the functions: it costs `trainkit --help` about 0.7 s.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from trainkit.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

BYTES = "bytes"
"""Tokenizer name of the built-in byte-level tokenizer (256 byte tokens, then <s>, </s>, <pad>)."""


def byte_tokenizer() -> PreTrainedTokenizerBase:
    """A byte-level tokenizer built in memory (token id = byte value), for models built from a config.

    tokenizers' BPE with no merges over the byte alphabet GPT-2 uses: nothing to download or train, and any text
    round-trips exactly.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {char: byte for byte, char in bytes_to_unicode().items()}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """The byte tokenizer for `bytes`, else the tokenizer of a Hub model or local folder; it always has a pad token."""
    if name == BYTES:
        return byte_tokenizer()
    from transformers import AutoTokenizer

    tokenizer = _from_hub(AutoTokenizer.from_pretrained, name, "tokenizer")
    if tokenizer.pad_token is None:  # most causal LMs have none; padding is masked out, so EOS serves
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def create_causal_lm(
    model_name: str | None, model_config: dict[str, Any] | None, pretrained: bool, tokenizer: PreTrainedTokenizerBase
) -> PreTrainedModel:
    """A causal LM: `model_name`'s architecture (its weights only when `pretrained`), or one built from
    `model_config` ({model_type: llama, hidden_size: 128, ...}) whose vocabulary and special tokens default to
    the tokenizer's."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if (model_name is None) == (model_config is None):
        raise ConfigError(
            "give exactly one of model_name (a Hugging Face model, e.g. Qwen/Qwen2.5-0.5B) and model_config "
            "(e.g. {model_type: llama, hidden_size: 128, num_hidden_layers: 2}) in --model.init_args"
        )
    if model_config is not None:
        settings = dict(model_config)
        model_type = settings.pop("model_type", None)
        if model_type is None:
            raise ConfigError("model_config needs a model_type, e.g. {model_type: llama, hidden_size: 128}")
        settings.setdefault("vocab_size", len(tokenizer))
        for token in ("pad", "bos", "eos"):
            settings.setdefault(f"{token}_token_id", getattr(tokenizer, f"{token}_token_id"))
        try:
            config = AutoConfig.for_model(model_type, **settings)
        except ValueError as error:  # transformers: "Unrecognized model identifier: ..."
            raise ConfigError(f"model_config: {error}") from error
        return AutoModelForCausalLM.from_config(config)
    if pretrained:
        return _from_hub(AutoModelForCausalLM.from_pretrained, model_name, "weights")
    return AutoModelForCausalLM.from_config(_from_hub(AutoConfig.from_pretrained, model_name, "config"))


def _from_hub(load: Any, name: str, what: str) -> Any:
    """Call a transformers `from_pretrained`, turning a missing model or no internet into one ConfigError."""
    try:
        return load(name)
    except OSError as error:  # transformers raises OSError for unknown names, no connection and HF_HUB_OFFLINE
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        why = "HF_HUB_OFFLINE is set" if offline else "no internet, or no such model"
        raise ConfigError(
            f"cannot load the {what} of '{name}' ({why}); download it once with internet (it is cached), pass a "
            "local folder, or use model_config with the bytes tokenizer for a model that needs no download"
        ) from error
