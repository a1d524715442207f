"""A tiny llama GGUF with random weights (~0.5 MB): a model the real Ollama loads in well under a
second on CPU, written at test time so no weights are committed. Its answers are random text.

Shape: 2 blocks, 64-d embedding, 4 heads, feed-forward 128, a SentencePiece vocabulary of the
three control tokens, the 256 byte tokens (byte fallback, so any text tokenizes) and a few words.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter, TokenType

_EMBED, _BLOCKS, _FFN, _HEADS, _CONTEXT = 64, 2, 128, 4, 32768
_WORDS = ("the", "a", "is", "of", "and", "to", "in", "it", "you", "hello", "world", "model", "tiny")

# What tests send as the Modelfile next to the GGUF (a raw prompt template; a small context).
MODELFILE = 'FROM ./tiny.gguf\nTEMPLATE "{{ .Prompt }}"\nPARAMETER num_ctx 256\n'


def _vocabulary() -> tuple[list[bytes], list[float], list[int]]:
    tokens: list[bytes] = [b"<unk>", b"<s>", b"</s>"]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>".encode() for b in range(256)]
    types += [TokenType.BYTE] * 256
    words = [f"\u2581{w}" for w in _WORDS] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens += [w.encode() for w in words]
    types += [TokenType.NORMAL] * len(words)
    scores = [0.0] * 259 + [-float(i) for i in range(len(words))]
    return tokens, scores, [int(t) for t in types]


def write_tiny_gguf(path: Path, seed: int = 0) -> Path:
    """Write the model to `path` (deterministic for a seed) and return it."""
    rng = np.random.default_rng(seed)
    tokens, scores, types = _vocabulary()
    writer = GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_context_length(_CONTEXT)
    writer.add_embedding_length(_EMBED)
    writer.add_block_count(_BLOCKS)
    writer.add_feed_forward_length(_FFN)
    writer.add_head_count(_HEADS)
    writer.add_head_count_kv(_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(_EMBED // _HEADS)
    writer.add_file_type(0)  # all F32
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)

    def weights(name: str, rows: int, cols: int) -> None:
        writer.add_tensor(name, (rng.standard_normal((rows, cols)) * 0.1).astype(np.float32))

    def ones(name: str) -> None:
        writer.add_tensor(name, np.ones(_EMBED, dtype=np.float32))

    vocab = len(tokens)
    weights("token_embd.weight", vocab, _EMBED)
    ones("output_norm.weight")
    # Output logits spread wide and </s>'s pinned at 0: outside the top 40 it is never sampled, so a
    # generation runs as long as num_predict and num_ctx let it (a test can leave a stream mid-way).
    output = rng.standard_normal((vocab, _EMBED)).astype(np.float32)
    output[2] = 0.0
    writer.add_tensor("output.weight", output)
    for b in range(_BLOCKS):
        ones(f"blk.{b}.attn_norm.weight")
        for part in ("q", "k", "v", "output"):
            weights(f"blk.{b}.attn_{part}.weight", _EMBED, _EMBED)
        ones(f"blk.{b}.ffn_norm.weight")
        weights(f"blk.{b}.ffn_gate.weight", _FFN, _EMBED)
        weights(f"blk.{b}.ffn_up.weight", _FFN, _EMBED)
        weights(f"blk.{b}.ffn_down.weight", _EMBED, _FFN)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
