"""The shipped reader weights, checked and composed with the provisioned e5 into an ONNX graph.

The repo carries only what training changed (``rag/reader/weights/weights.safetensors``: the upper encoder
layers and the two heads, fp16); the frozen word embeddings and lower layers are the provisioned
multilingual-e5-small's own. ``tanya provision`` checks the shipped file's size and sha256 against
``rag/reader/weights/reader.json``, puts the two together, exports the graph once with torch, fuses it
like the embedder and stores its embedding tables as 8-bit, its arithmetic fp32 so that its answers are the
same on every CPU (index/onnx_embedder.py ``fuse_and_quantise``). Serving then needs onnxruntime only.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

from index.errors import InputError
from index.model import sha256_of

SHIPPED = Path(__file__).with_name("weights")
WEIGHTS_FILE, MANIFEST_FILE = "weights.safetensors", "reader.json"
GRAPH = Path("reader") / "reader.onnx"  # inside the provisioned model folder
OLDER_GRAPH = Path("reader") / "reader_qint8.onnx"  # all-int8, before issue 26: removed when composing
COMPOSED = Path("reader") / "composed.json"
FROZEN_LAYERS = 4  # the lowest encoder layers keep the provisioned weights (not trained, not shipped)


def build_model(model_dir: Path):
    """The reader as a torch module: the provisioned e5 encoder plus a span head and an answerable head;
    only ``trainable`` parameters need gradients."""
    import torch
    from transformers import AutoModel

    class Reader(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
            hidden = self.encoder.config.hidden_size
            self.span = torch.nn.Linear(hidden, 2)
            self.answerable = torch.nn.Linear(hidden, 1)

        def forward(self, input_ids, attention_mask):
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            logits = self.span(h)
            return logits[..., 0], logits[..., 1], self.answerable(h[:, 0]).squeeze(-1)

    model = Reader()
    for name, param in model.named_parameters():
        param.requires_grad = trainable(name)
    return model


def trainable(name: str) -> bool:
    if name.startswith(("span.", "answerable.")):
        return True
    if name.startswith("encoder.encoder.layer."):
        return int(name.split(".")[3]) >= FROZEN_LAYERS
    return False  # embeddings, pooler, lower layers



class ReaderUnavailable(InputError):
    """The reader's weights are missing, damaged or not yet composed; the message says what to do
    (an InputError: the CLI prints it as one line and exits 1)."""


def reader_dir(folder: Path | None = None) -> Path:
    """The folder of reader weights + manifest: ``TANYA_READER_DIR`` (e.g. weights you retrained), else
    the ones shipped in ``rag/reader/weights/``."""
    return folder or Path(os.environ.get("TANYA_READER_DIR") or SHIPPED)


def manifest(folder: Path | None = None) -> dict:
    path = reader_dir(folder) / MANIFEST_FILE
    if not path.is_file():
        raise ReaderUnavailable(f"the reader's manifest {path} is missing: reinstall Tanya (git checkout rag/reader)")
    return json.loads(path.read_text(encoding="utf-8"))


def check_shipped(folder: Path | None = None) -> dict:
    """The manifest, once the shipped weights match its size and sha256."""
    meta = manifest(folder)
    weights = reader_dir(folder) / WEIGHTS_FILE
    if not weights.is_file():
        raise ReaderUnavailable(f"the reader's weights {weights} are missing: reinstall Tanya "
                                "(git checkout rag/reader), or retrain them with `make train-reader`")
    size = weights.stat().st_size
    if size != meta["weights_bytes"]:
        raise ReaderUnavailable(f"the reader's weights {weights} have {size:,} bytes, expected "
                                f"{meta['weights_bytes']:,}: the file is damaged or from another version")
    if sha256_of(weights) != meta["weights_sha256"]:
        raise ReaderUnavailable(f"the reader's weights {weights} do not match the sha256 in their manifest: "
                                "the file is damaged or from another version")
    return meta


def graph_path(model_dir: Path) -> Path:
    return model_dir / GRAPH


def composed_graph(model_dir: Path, folder: Path | None = None) -> Path:
    """The composed graph, after checking it is the one built from today's shipped weights."""
    from index.onnx_embedder import FP32_8BIT_EMBEDDINGS, is_current_export

    path, record = graph_path(model_dir), model_dir / COMPOSED
    if not path.is_file() or not record.is_file():
        raise ReaderUnavailable("the reader is not provisioned: run `tanya provision`")
    if not is_current_export(path, record, quantisation=FP32_8BIT_EMBEDDINGS,
                             weights_sha256=manifest(folder)["weights_sha256"]):
        raise ReaderUnavailable(f"the reader graph {path} was built from other weights or another recipe, "
                                "or is damaged: run `tanya provision`")
    return path


def is_composed(model_dir: Path, folder: Path | None = None) -> bool:
    try:
        composed_graph(model_dir, folder)
    except ReaderUnavailable:
        return False
    return True


def compose(model_dir: Path, folder: Path | None = None) -> Path:
    """Build ``model_dir/reader/reader.onnx`` from the provisioned e5 and the shipped weights
    (once; atomic). Raises ReaderUnavailable with a clear message on missing or damaged weights."""
    meta = check_shipped(folder)
    if is_composed(model_dir, folder):
        return graph_path(model_dir)
    print("tanya: composing the reader (once per model folder, about a minute)", file=sys.stderr, flush=True)
    import torch
    from safetensors.torch import load_file

    from index.onnx_embedder import FP32_8BIT_EMBEDDINGS, fuse_and_quantise, write_export_record

    model = build_model(model_dir)
    state = {k: v.float() for k, v in load_file(str(reader_dir(folder) / WEIGHTS_FILE)).items()}
    missing = set(state) - set(model.state_dict())
    if missing:
        raise ReaderUnavailable(f"the reader's weights hold tensors this model does not have: {sorted(missing)[:3]}")
    model.load_state_dict(state, strict=False)
    model.eval()

    class Graph(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
            return self.inner(input_ids, attention_mask)

    target = graph_path(model_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        raw, fused, quantised = Path(tmp, "raw.onnx"), Path(tmp, "fused.onnx"), Path(tmp, "int8.onnx")
        ids = torch.tensor([[0, 1000, 2000, 2], [0, 5, 2, 1]])
        mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
        axes = {0: "batch", 1: "tokens"}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(Graph(model), (ids, mask), str(raw), dynamo=False, opset_version=17,
                              input_names=["input_ids", "attention_mask"],
                              output_names=["start_logits", "end_logits", "answerable_logit"],
                              dynamic_axes={"input_ids": axes, "attention_mask": axes, "start_logits": axes,
                                            "end_logits": axes, "answerable_logit": {0: "batch"}})
        del model
        fuse_and_quantise(raw, fused, quantised, json.loads((model_dir / "config.json").read_text(encoding="utf-8")),
                          integer_matmuls=False)
        os.replace(quantised, target)
    write_export_record(target, model_dir / COMPOSED, quantisation=FP32_8BIT_EMBEDDINGS,
                        weights_sha256=meta["weights_sha256"])
    (model_dir / OLDER_GRAPH).unlink(missing_ok=True)
    return target


def compose_in_subprocess(model_dir: Path) -> None:
    """``compose`` in a child process, so a serving process never imports torch."""
    import subprocess

    check_shipped()  # a clear message here rather than a child's traceback
    done = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                           "from rag.reader.model import compose; compose(Path(sys.argv[1]))", str(model_dir)],
                          check=False)
    if done.returncode != 0 or not is_composed(model_dir):
        raise ReaderUnavailable(f"composing the reader in {model_dir} failed: run `tanya provision` to see why")

