"""Write tiny random-weight llama-architecture GGUF files that the real llama.cpp loads in ms."""

from __future__ import annotations

import string
from pathlib import Path

import gguf
import numpy as np

# SentencePiece token types as llama.cpp reads them.
NORMAL, UNKNOWN, CONTROL, BYTE = 1, 2, 3, 6

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _vocab(bos: str = "<s>", eos: str = "</s>",
           specials: tuple[str, ...] = ()) -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", bos, eos]
    types = [UNKNOWN, CONTROL, CONTROL]
    # Byte fallback for ASCII only: every ASCII text tokenizes, and the random model can never
    # emit half a UTF-8 character (llama-cpp-python holds such bytes back from the stream).
    tokens += [f"<0x{b:02X}>" for b in range(128)]
    types += [BYTE] * 128
    pieces = ["\u2581"] + [c for c in string.ascii_letters + string.digits + string.punctuation]
    pieces += ["\u2581" + w for w in ("The", "answer", "is", "Question", "Answer", "the", "of")]
    tokens += pieces
    types += [NORMAL] * len(pieces)
    scores = [0.0] * (3 + 128) + [-float(i) for i in range(len(pieces))]
    # A chat template's special tokens (<｜User｜>, <|im_start|>, <think>, …) are control tokens,
    # so llama.cpp tokenizes each as one token, as in the real model's vocabulary.
    extra = [t for t in dict.fromkeys(specials) if t not in tokens]
    tokens += extra
    types += [CONTROL] * len(extra)
    scores += [0.0] * len(extra)
    return tokens, scores, types


def write_tiny_llama(path: Path, *, seed: int = 0, n_ctx: int = 2048, n_embd: int = 64,
                     n_layer: int = 2, n_head: int = 4, n_ff: int = 128,
                     chat_template: str | None = CHATML, bos: str = "<s>", eos: str = "</s>",
                     specials: tuple[str, ...] = (), add_bos: bool = True) -> Path:
    """A 2-layer llama with random weights: output is noise, but every code path is real.

    `chat_template`, `bos`, `eos`, `specials` and `add_bos` let the file carry a real model's
    chat template with the special tokens it writes (see tests/templates.py).
    """
    rng = np.random.default_rng(seed)
    tokens, scores, types = _vocab(bos, eos, specials)
    n_vocab = len(tokens)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-random-llama")
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(add_bos)
    if chat_template:
        writer.add_chat_template(chat_template)

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    # numpy shapes are ggml's ne reversed: token_embd is ne=[n_embd, n_vocab].
    writer.add_tensor("token_embd.weight", weights(n_vocab, n_embd))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", weights(n_vocab, n_embd))
    for i in range(n_layer):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"blk.{i}.{name}.weight", weights(n_embd, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weights(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weights(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weights(n_embd, n_ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
