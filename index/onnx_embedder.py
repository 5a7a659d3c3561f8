"""multilingual-e5-small as int8 ONNX, run by onnxruntime: ~2.5x faster than torch fp32 on 2 cores,
and a serving process that never imports torch (figures and the quality check: benchmarks/README.md).

Why not sentence-transformers' own ``backend="onnx"``? It needs ``optimum``, whose install downgrades
sentence-transformers and transformers under our torch pin. So we export once with torch's exporter,
fuse with onnxruntime's BERT optimiser and quantise weights to int8 (``onnxruntime.quantization``),
then run the graph with the ``tokenizers`` library and the same mean pooling + normalisation.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.embeddings import BaseEmbedding
from pydantic import PrivateAttr

ONNX_INT8 = Path("onnx") / "model_qint8.onnx"  # inside the sentence-transformers model folder
ONNX_INT8_RECORD = Path("onnx") / "model_qint8.json"  # how that graph was quantised (QUANTISATION)
# Bump when fuse_and_quantise changes: folders exported by an older recipe are exported again.
# 7-bit weights: see fuse_and_quantise.
QUANTISATION = "dynamic-int8-per-channel-7bit-weights"
# The reader's recipe (rag/reader/model.py): fp32 arithmetic, only the embedding layer's tables stored as 8-bit.
FP32_8BIT_EMBEDDINGS = "fp32-arithmetic-8bit-embedding-tables"
MAX_TOKENS = 512
BATCH = 32  # texts per forward pass, after sorting by length (chosen by measurement)


def onnx_path(model_dir: Path) -> Path:
    return model_dir / ONNX_INT8


def int8_instruction_sets() -> dict[str, bool]:
    """Which of the instruction sets that choose onnxruntime's int8 kernels this CPU has (Linux x86-64;
    all False elsewhere). Reports record them: the answers should not depend on them (``fuse_and_quantise``)."""
    try:
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        flags = set()
    return {name: name in flags for name in ("avx2", "avx512_vnni", "avx_vnni", "amx_int8")}


def describe_instruction_sets() -> str:
    """E.g. "avx2, avx512_vnni, no avx_vnni, no amx_int8": for the first lines of reports."""
    return ", ".join(name if present else f"no {name}" for name, present in int8_instruction_sets().items())


# One model run at a time in a process (the embedder's and the reader's): each run already uses every
# core (intra_op_num_threads), so runs side by side only share the cores while each holds its own
# buffers. Sixteen clients: RSS ~1,060 MB and still growing without it, ~895 MB and flat with it, at
# the same throughput within noise (docs/reliability.md).
model_runs = threading.Lock()


def session_options(threads: int | None = None, arena: bool = True):  # -> onnxruntime.SessionOptions
    """How Tanya runs its ONNX graphs (this embedder, rag/reader/inference.py's reader): one thread per core, one
    operator at a time. ``arena=False`` for a graph whose inputs change shape with every call (the
    reader): onnxruntime's arena keeps its largest blocks for good (see rag/reader/inference.py).

    No spinning: by default onnxruntime's threads spin after each operator, waiting for the next, and on two
    cores they take them from everything else a question runs (BM25, Chroma, the next graph). Without it,
    FacQA questions on the 1,295-document home took ask p50 / p95 95-102 / 147-170 ms instead of 113-120 /
    177-180 ms with 22% less CPU; a bare query embedding (retrieve) 11-13 ms instead of 7-9; indexing the
    same (benchmarks/README.md)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = arena
    return options


def export_int8(model_dir: Path) -> Path:
    """Export, fuse and quantise once per model folder (~1 min, ~4 GB peak); atomic. A folder exported
    with another QUANTISATION recipe is exported again."""
    target = onnx_path(model_dir)
    if is_current_export(target, model_dir / ONNX_INT8_RECORD):
        return target
    print("tanya: exporting the int8 ONNX model (once per model folder, about a minute)", file=sys.stderr,
          flush=True)
    import torch
    from transformers import AutoModel

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    # Eager attention traces to a graph the BERT optimiser fuses completely (sdpa does not).
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # Keywords: transformers 5's BertModel.forward cannot be traced with positional arguments.
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        raw, fused, quantised = Path(tmp, "raw.onnx"), Path(tmp, "fused.onnx"), Path(tmp, "int8.onnx")
        ids = torch.tensor([[0, 1000, 2000, 2], [0, 5, 2, 1]])  # a padded row traces the mask path
        mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
        axes = {0: "batch", 1: "tokens"}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's notes on ops it rewrites
            torch.onnx.export(LastHidden(model), (ids, mask), str(raw), dynamo=False, opset_version=17,
                              input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                              dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes})
        del model
        fuse_and_quantise(raw, fused, quantised, config)
        os.replace(quantised, target)
    write_export_record(target, model_dir / ONNX_INT8_RECORD)
    return target


def export_facts(graph: Path, **facts: str) -> dict[str, object]:
    """What an exported graph's record holds: its recipe and size (a cut-short copy shows), plus ``facts``."""
    return {"quantisation": QUANTISATION, "graph_bytes": graph.stat().st_size, **facts}


def is_current_export(graph: Path, record: Path, **facts: str) -> bool:
    """Whether ``graph`` is whole and was quantised with today's QUANTISATION (and has ``facts``)."""
    if not graph.is_file() or not record.is_file():
        return False
    try:
        built = json.loads(record.read_text(encoding="utf-8"))
    except ValueError:  # a record cut short: export again
        return False
    return all(built.get(key) == value for key, value in export_facts(graph, **facts).items())


def write_export_record(graph: Path, record: Path, **facts: str) -> None:
    record.write_text(json.dumps(export_facts(graph, **facts), indent=2), encoding="utf-8")


def fuse_and_quantise(raw: Path, fused: Path, quantised: Path, config: dict, integer_matmuls: bool = True) -> None:
    """onnxruntime's BERT fusion, then dynamic int8: for any e5-based graph.

    ``integer_matmuls`` (the embedder): every MatMul and attention with int8 weights (per channel, 7 bits)
    and activations quantised on the fly. 7-bit weights keep AVX2-only CPUs from saturating: without
    VNNI, onnxruntime's u8s8 kernels multiply with AVX2's VPMADDUBSW, which adds two u8*s8 products into
    an int16 and saturates once a pair exceeds 32,767 (255*127*2 = 64,770); AVX-512 VNNI and AMX add into
    int32 and never do. With weights in [-64, 64] a pair is at most 32,640, so both paths compute the
    same integers (tests/test_cpu_independence.py checks this under an emulated AVX2-only CPU). The
    float kernels around them still differ in the last bit between instruction sets, and a value on a
    rounding edge of the activation quantisation then moves a step: query-passage scores by up to 0.004.

    Otherwise (the reader, whose logit decides refusals): fp32 arithmetic, only the embedding layer's
    tables stored as 8-bit (the fused EmbedLayerNormalization's word, position and token-type embeddings
    and its layer norm, uint8 per tensor: 96 of the 118M parameters), which dequantise to the same floats
    on every CPU. Its outputs then differ between instruction sets by float rounding
    alone (5e-6 emulated), where int8 activations moved its answerable logit by up to 0.18 and changed 1
    of 73 seed answers. It cost ~38 ms a question (`ask` p50 71 -> 109 ms, threads still spinning) and ~70 MB
    (benchmarks/README.md).
    """
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    optimize_model(str(raw), model_type="bert", num_heads=config["num_attention_heads"],
                   hidden_size=config["hidden_size"], opt_level=0).save_model_to_file(str(fused))
    # DefaultTensorType: shape inference cannot type the fused com.microsoft ops' outputs.
    options = {"DefaultTensorType": TensorProto.FLOAT}
    logging.disable(logging.WARNING)  # "consider pre-processing": not needed for dynamic int8
    try:
        if integer_matmuls:
            quantize_dynamic(str(fused), str(quantised), weight_type=QuantType.QInt8, per_channel=True,
                             reduce_range=True, extra_options=options)
        else:
            quantize_dynamic(str(fused), str(quantised), weight_type=QuantType.QInt8, per_channel=False,
                             op_types_to_quantize=["EmbedLayerNormalization"], extra_options=options)
    finally:
        logging.disable(logging.NOTSET)


_tokenizers: dict[Path, Any] = {}
_tokenizers_lock = threading.Lock()


def shared_tokenizer(model_dir: Path) -> Any:
    """The model's tokenizer, loaded once per process and model folder: each copy holds ~280 MB (the
    250k-piece vocabulary), and the embedder and the reader both need it. Shared, it carries no truncation
    or padding settings: each caller cuts and pads its own inputs."""
    from tokenizers import Tokenizer

    with _tokenizers_lock:
        if model_dir not in _tokenizers:
            _tokenizers[model_dir] = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        return _tokenizers[model_dir]


class OnnxE5Embedding(BaseEmbedding):
    """A llama-index embedding over the int8 graph: queries get ``query: ``, passages ``passage: ``."""

    _session: Any = PrivateAttr()
    _tokenizer: Any = PrivateAttr()
    _pad_id: int = PrivateAttr()
    _shrink: Any = PrivateAttr()

    def __init__(self, model_dir: Path, query_prompt: str, passage_prompt: str, threads: int | None = None) -> None:
        # llama-index hands over batches of up to 2,048 texts (its maximum); we sort them by length and
        # run BATCH at a time.
        super().__init__(model_name=str(onnx_path(model_dir)), embed_batch_size=2048)
        import onnxruntime as ort

        self._session = ort.InferenceSession(str(onnx_path(model_dir)), sess_options=session_options(threads),
                                             providers=["CPUExecutionProvider"])
        self._tokenizer = shared_tokenizer(model_dir)
        # The last batch of each call hands back to the OS what the arena holds beyond it (what a call of
        # 2,048 passages or the start-up sample needed stays otherwise, ~100 MB in `tanya serve`); the
        # batches before it keep the arena, which makes indexing ~8% faster than running without one.
        self._shrink = ort.RunOptions()
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self._pad_id = self._tokenizer.token_to_id("<pad>")
        self._prompts = (query_prompt, passage_prompt)

    @classmethod
    def class_name(cls) -> str:
        return "OnnxE5Embedding"

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised embeddings of texts that already carry their prompt."""
        out = np.zeros((len(texts), 384), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths pad least
        for start in range(0, len(texts), BATCH):
            rows = order[start : start + BATCH]
            # Truncated as the tokenizer's own truncation would (the text's first MAX_TOKENS - 2 pieces
            # between <s> and </s>), padded to the longest.
            seqs = [e.ids if len(e.ids) <= MAX_TOKENS else [*e.ids[: MAX_TOKENS - 1], e.ids[-1]]
                    for e in self._tokenizer.encode_batch([texts[i] for i in rows])]
            width = max(len(q) for q in seqs)
            ids = np.full((len(seqs), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(seqs), width), dtype=np.int64)
            for row, q in enumerate(seqs):
                ids[row, : len(q)], mask[row, : len(q)] = q, 1
            with model_runs:
                hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask},
                                           self._shrink if start + BATCH >= len(texts) else None)[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out

    def _get_query_embedding(self, query: str) -> list[float]:
        return self.encode([self._prompts[0] + query])[0].tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.encode([self._prompts[1] + text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.encode([self._prompts[1] + t for t in texts]).tolist()
