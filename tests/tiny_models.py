"""Tiny models the tests build themselves, so nothing is downloaded."""

from __future__ import annotations


def build_tiny_encoder(folder, n_words: int = 200) -> str:
    """A 1-layer, 32-d random BERT saved as a model folder (for the pretrained-encoder methods: no weights are
    downloaded). Its word pieces are the synthetic tasks' words and those of the contract's label-identity
    task, so no document of either is all [UNK]."""
    from mlbench.data.synthetic import IDENTITY_LABELS, IDENTITY_WORDS

    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(n_words)]
    words += [f"l{j}w{k}" for j in range(IDENTITY_LABELS) for k in range(IDENTITY_WORDS)] + [f"bg{i}" for i in range(40)]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)
    # a tokenizer that silently kept only its special tokens would make every document [UNK]
    assert len(tokenizer) == len(words) and tokenizer.tokenize("w1 l0w0") == ["w1", "l0w0"], len(tokenizer)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    return str(folder)
