"""Local language models: a GGUF file written by the `gguf` package and a saved folder load back through
`model_name` with the source model's logits, tokenizer, special tokens and chat template, offline; bad paths are
one line."""

from __future__ import annotations

import csv
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch

from tests.conftest import DOCTOR_OFF, REPO
from trainkit.data import InstructionDataModule
from trainkit.errors import ConfigError
from trainkit.models.language import (
    add_decoder_layers,
    create_causal_lm,
    fix_gguf_special_tokens,
    load_tokenizer,
    local_model,
)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2 as in SmolLM2
MERGES = ["a d", "ad d", "r e"]
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CONFIG = REPO / "configs" / "language" / "smollm_sft_lora.yaml"
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 64}


def _tokens() -> list[str]:
    """SmolLM2's layout in small: three control tokens, the 256 byte-level symbols, then the merged pieces."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return SPECIALS + list(bytes_to_unicode().values()) + [merge.replace(" ", "") for merge in MERGES]


def _tiny_llama() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(_tokens()), bos_token_id=1, eos_token_id=2, tie_word_embeddings=False, **TINY)
    return LlamaForCausalLM(config).eval()


def _permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's q/k row order (its rotary layout); transformers' GGUF loader undoes it."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(
        weight.shape)


def write_gguf(model: torch.nn.Module, path: Path) -> Path:
    """The model as llama.cpp's converter writes it: llama metadata, a byte-level BPE tokenizer, F32 tensors."""
    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    tokens = _tokens()
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL] * len(SPECIALS) + [gguf.TokenType.NORMAL] * (len(tokens) - 3))
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_chat_template(CHATML)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        weight = tensor.float().numpy()
        if name.endswith("q_proj.weight"):
            weight = _permute(weight, config.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            weight = _permute(weight, config.num_key_value_heads)
        writer.add_tensor(names.get_name(name, try_suffixes=(".weight",)), weight)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    model = _tiny_llama()
    return model, write_gguf(model, tmp_path_factory.mktemp("gguf") / "tiny.F32.gguf")


def test_a_gguf_file_loads_with_the_source_logits_tokenizer_and_chat_template(
    tiny_gguf: tuple[torch.nn.Module, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source, path = tiny_gguf
    tokenizer = load_tokenizer(str(path))
    loaded = create_causal_lm(str(path), None, True, tokenizer).eval()
    assert (tokenizer.bos_token, tokenizer.bos_token_id, tokenizer.eos_token, tokenizer.eos_token_id) == (
        "<|im_start|>", 1, "<|im_end|>", 2)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "add read"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nadd read<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids[:4]) == ["<|im_start|>", "u", "s", "e"]  # control tokens stay whole
    assert "add" in tokenizer.convert_ids_to_tokens(ids) and "re" in tokenizer.convert_ids_to_tokens(ids)  # merges
    assert tokenizer.decode(ids) == prompt
    batch = torch.tensor([ids])
    with torch.no_grad():
        expected, got = source(batch).logits, loaded(batch).logits
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    loaded.save_pretrained(tmp_path / "saved")  # dequantised: plain weights hf export can write


def test_a_swapped_bos_and_eos_are_set_back_to_the_files_ids(tiny_gguf: tuple[torch.nn.Module, Path]) -> None:
    _, path = tiny_gguf
    tokenizer = load_tokenizer(str(path))
    tokenizer.bos_token, tokenizer.eos_token = "<|im_end|>", "<|im_start|>"  # the reported loader fault, injected
    fix_gguf_special_tokens(tokenizer, path)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (1, 2)


def test_a_saved_folder_loads_offline_with_the_same_logits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainkit.models.language import byte_tokenizer

    source = _tiny_llama()
    source.save_pretrained(tmp_path / "tiny")
    byte_tokenizer().save_pretrained(tmp_path / "tiny")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = load_tokenizer(str(tmp_path / "tiny"))
    loaded = create_causal_lm(str(tmp_path / "tiny"), None, True, tokenizer).eval()
    ids = torch.tensor([tokenizer("reverse cat =")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, source(ids).logits)


def test_added_decoder_layers_run_after_the_models_own() -> None:
    model = _tiny_llama().eval()
    ids = torch.tensor([[5, 9, 33, 41]])
    with torch.no_grad():
        before = model(ids).logits
        add_decoder_layers(model, 2)
        assert len(model.model.layers) == model.config.num_hidden_layers == 4
        for layer in model.model.layers[2:]:  # the new layers' outputs zeroed: each passes its input through
            torch.nn.init.zeros_(layer.self_attn.o_proj.weight)
            torch.nn.init.zeros_(layer.mlp.down_proj.weight)
        torch.testing.assert_close(model(ids).logits, before)  # the model's own layers are untouched
        torch.nn.init.normal_(model.model.layers[3].mlp.down_proj.weight)
        assert not torch.allclose(model(ids).logits, before)  # and the forward runs the last added one


@pytest.mark.parametrize(("name", "words"), [
    ("missing/model.Q4_0.gguf", "GGUF file 'missing/model.Q4_0.gguf' does not exist"),
    ("./no_such_folder", "model folder './no_such_folder' does not exist"),
])
def test_a_missing_local_model_is_one_line(name: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as raised:
        local_model(name)
    assert "\n" not in str(raised.value)


@pytest.mark.slow  # a LoRA fit and test through the CLI
def test_sft_with_lora_on_a_gguf_model_through_the_cli(
    tiny_gguf: tuple[torch.nn.Module, Path], workdir: Path, trainkit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, path = tiny_gguf
    assert trainkit("fit", "--config", CONFIG, "--model.init_args.model_name", str(path),
             "--data.init_args.generated", "32", "--data.init_args.generated_val", "8",
             "--data.init_args.generated_test", "8", "--data.init_args.batch_size", "8",
             "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.log_every_n_steps", "1",
             "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", *DOCTOR_OFF) == 0
    run = workdir / "runs" / "lm_smollm_lora" / "version_0"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert any(r.get("train/loss_step") for r in rows) and any(r.get("test/exact_match") for r in rows)
    saved = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert saved["hyper_parameters"]["model_name"] == str(path)
    assert any(".q_proj.lora_A." in k for k in saved["state_dict"])
    data = InstructionDataModule(template="auto", generated=32, generated_val=8, generated_test=8)
    data.tokenizer = load_tokenizer(str(path))
    data.setup("fit")
    assert data.splits["val"][0]["prompt"].startswith("<|im_start|>user\n")  # template auto: the GGUF's chat one
