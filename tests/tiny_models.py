"""Tiny random models of every family, saved as folders the way the hub lays them out (no download):
2-layer decoders (Llama, Qwen2, GPT-2) with a tokenizer that has an EOS but no pad token, a tiny ViT and
DINOv2 with their image processors. tests/conftest.py makes session fixtures of them;
benchmarks/trainable_params.py prints the trainable-parameter table on them."""
from __future__ import annotations

from pathlib import Path

WORDS = ("good great fine nice lovely superb happy bad awful poor nasty dreadful sad ugly "
         "the a movie film plot actor scene was is it this").split()
SPECIALS = ["<unk>", "<s>", "</s>"]
DECODERS = ("llama", "qwen2", "gpt2")


def _word_tokenizer(eos: bool = True, padding_side: str = "right"):
    """A whole-word tokenizer over WORDS: an EOS (</s>) unless eos=False, never a pad token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIALS + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", padding_side=padding_side,
                                   **({"eos_token": "</s>"} if eos else {}))


def _byte_bpe_tokenizer(padding_side: str = "right"):
    """A byte-level BPE trained on WORDS (Qwen2's tokenizer class reads only this kind), EOS <|endoftext|>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([" ".join(WORDS)] * 10, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", padding_side=padding_side)


def save_decoder(path: Path, family: str = "llama", *, padding_side: str = "right", eos: bool = True,
                 dtype: str = "float32", hidden: int = 32, layers: int = 2, heads: int = 4,
                 positions: int = 64) -> Path:
    """A decoder LM (2 layers of hidden 32 unless asked otherwise: benchmarks/gpu.py and
    benchmarks/fsdp_memory.py build bigger ones) and its tokenizer (no pad token) in `path`."""
    import torch
    from transformers import GPT2Config, GPT2Model, LlamaConfig, LlamaModel, Qwen2Config, Qwen2Model

    tokenizer = _byte_bpe_tokenizer(padding_side) if family == "qwen2" else _word_tokenizer(eos, padding_side)
    n = len(tokenizer)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    common = dict(vocab_size=n, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=max(1, heads // 2),
                  max_position_embeddings=positions, **ids)
    config, cls = {
        "llama": (lambda: LlamaConfig(**common), LlamaModel),
        "qwen2": (lambda: Qwen2Config(**common), Qwen2Model),
        "gpt2": (lambda: GPT2Config(vocab_size=n, n_embd=hidden, n_layer=layers, n_head=heads, n_positions=positions,
                                    **ids), GPT2Model),
    }[family]
    torch.manual_seed(0)
    model = cls(config())
    model.to(getattr(torch, dtype)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


def save_vit(path: Path, family: str = "vit") -> Path:
    """A 2-layer ViT (or DINOv2), hidden 32, 32 x 32 images in 8 x 8 patches, with its image processor."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model, ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    if family == "dinov2":
        model = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2,
                                         image_size=32, patch_size=8, drop_path_rate=0.0))
        processor = BitImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32},
                                      do_center_crop=True, image_mean=[0.485, 0.456, 0.406],
                                      image_std=[0.229, 0.224, 0.225])
    else:
        model = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=64, image_size=32, patch_size=8))
        processor = ViTImageProcessor(size={"height": 32, "width": 32})
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return Path(path)
