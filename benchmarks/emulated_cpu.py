"""Answers with query vectors computed on an emulated AVX2-only CPU against this CPU's own (issue 26).

    python benchmarks/emulated_cpu.py HOME [--questions 150]

FacQA valid questions (the first N Indonesian and their English translations) are embedded twice with
Tanya's int8 embedder, one thread each: here, and under ``qemu-x86_64 -cpu Haswell-v4`` (AVX2 and FMA,
no AVX-512), where onnxruntime picks its AVX2 kernels. Each question is then asked over HOME with each
vector, the rest of the pipeline (the fp32 reader included) run here, and the answers compared: refusal,
first citation, short answer. The reader's own agreement is tests/test_cpu_independence.py's; this
measures what the embedder's rounding differences do to answers. Emulation is slow: ~5 s a question.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import index  # noqa: F401  (offline switches)
from eval import facqa
from index.embedder import PASSAGE_PROMPT, QUERY_PROMPT
from index.home import DataHome
from index.onnx_embedder import OnnxE5Embedding

AVX2_ONLY_CPU = "Haswell-v4"


def questions(n: int) -> list[str]:
    _, items = facqa.load()
    return ([it.question for it in items["valid"][:n]]
            + [it.question for it in facqa.english_items(items)["valid"][:n]])


def embed(model_dir: Path, asked: list[str]) -> np.ndarray:
    embedder = OnnxE5Embedding(model_dir, QUERY_PROMPT, PASSAGE_PROMPT, threads=1)
    return np.array([embedder.get_query_embedding(q) for q in asked], dtype=np.float32)


def compare(home: Path, asked: list[str], here: np.ndarray, there: np.ndarray) -> list[dict]:
    """The questions whose answers differ between the two sets of query vectors."""
    import rag.retriever as retriever
    from rag.tanya import Tanya

    chosen: dict[str, np.ndarray] = {}
    own = retriever.embed_query
    retriever.embed_query = lambda embedder, text: chosen.pop(text) if text in chosen else own(embedder, text)
    tanya = Tanya.open(home)

    def outcome(question: str, vector: np.ndarray) -> tuple:
        chosen[question] = vector
        answer = tanya.ask(question)
        assert not chosen, f"the pipeline never embedded {question!r} as it was asked: the vector was not used"
        first = [(c.doc_id, c.start, c.end) for c in answer.citations[:1]]
        return answer.abstained, first, answer.short_answer.text if answer.short_answer else None

    changed = []
    for question, a, b in zip(asked, here, there, strict=True):
        native, emulated = outcome(question, a), outcome(question, b)
        if native != emulated:
            changed.append({"question": question, "native": native, "emulated": emulated})
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("home", type=Path, help="a data home to ask over (e.g. .cache/facqa-home)")
    parser.add_argument("--questions", type=int, default=150, help="per language")
    parser.add_argument("--embed-only", type=Path, help=argparse.SUPPRESS)  # the emulated child's output
    args = parser.parse_args()
    asked = questions(args.questions)
    model_dir = DataHome.resolve(args.home).model_dir
    if args.embed_only is not None:
        np.save(args.embed_only, embed(model_dir, asked))
        return 0
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        print("emulated_cpu: qemu-x86_64 is missing (`make qemu` installs it)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "emulated.npy"
        print(f"embedding {len(asked)} questions on an emulated {AVX2_ONLY_CPU} CPU (~5 s each)", file=sys.stderr)
        done = subprocess.run([qemu, "-cpu", AVX2_ONLY_CPU, sys.executable, __file__, str(args.home), "--questions",
                               str(args.questions), "--embed-only", str(out)], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        there = np.load(out)
    here = embed(model_dir, asked)
    cosines = (here * there).sum(1) / np.linalg.norm(here, axis=1) / np.linalg.norm(there, axis=1)
    changed = compare(args.home, asked, here, there)
    print(json.dumps({"questions": len(asked), "identical_vectors": int((here == there).all(1).sum()),
                      "min_cosine": float(cosines.min()), "answers_changed": len(changed), "changed": changed},
                     ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
