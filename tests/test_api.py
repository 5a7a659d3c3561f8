"""The Python API and the llama-index retriever over the seed index."""

from __future__ import annotations

import pytest
from llama_index.core.retrievers import BaseRetriever

from rag import QuestionError, Tanya
from rag.tanya import with_context
from tests.helpers import KIRBY_DOC, THOMAS_DOC


def test_ask_cites_exact_sentences(seed_tanya: Tanya) -> None:
    answer = seed_tanya.ask("Siapa juru bicara Departemen Luar Negeri AS?")
    assert not answer.abstained and 1 <= len(answer.citations) <= 3
    for c in answer.citations:
        assert seed_tanya.document(c.doc_id).text[c.start : c.end] == c.sentence
        assert f"{c.sentence} [{c.n}]" in answer.answer
    assert "Kirby" in " ".join(c.sentence for c in answer.citations)


def test_refuses_with_no_citations(seed_tanya: Tanya) -> None:
    answer = seed_tanya.ask("Siapa pelatih tim nasional sepak bola Indonesia?")
    assert answer.abstained and answer.citations == [] and "tidak ditemukan" in answer.answer


def test_retrieve_ranks_chunks_with_offsets(seed_tanya: Tanya) -> None:
    hits = seed_tanya.retrieve("Kolonel John J. Thomas Central Command", k=4)
    assert [h.rank for h in hits] == [1, 2, 3, 4] and hits[0].doc_id == THOMAS_DOC
    assert all(hits[i].score >= hits[i + 1].score for i in range(3))
    for h in hits:
        assert seed_tanya.document(h.doc_id).text[h.start : h.end] == h.text


def test_llama_index_retriever_returns_nodes_with_offsets(seed_tanya: Tanya) -> None:
    retriever = seed_tanya.as_retriever(similarity_top_k=3)
    assert isinstance(retriever, BaseRetriever)
    nodes = retriever.retrieve("Siapa juru bicara Departemen Luar Negeri AS?")
    assert len(nodes) == 3 and nodes[0].node.metadata["doc_id"] == KIRBY_DOC
    for n in nodes:
        meta = n.node.metadata
        assert seed_tanya.document(meta["doc_id"]).text[meta["start"] : meta["end"]] == n.node.get_content()


@pytest.mark.parametrize("question", ["", "   ", "x" * 2001])
def test_bad_questions_raise_a_clear_error(seed_tanya: Tanya, question: str) -> None:
    with pytest.raises(QuestionError):
        seed_tanya.ask(question)


def test_follow_up_carries_the_previous_question() -> None:
    assert with_context("Siapa dia?", ["Siapa juru bicara Central Command AS?"]).startswith("Siapa juru bicara")
    assert with_context("Berapa orang tewas dalam serangan konvoi bantuan PBB?", ["Siapa Thomas?"]) == \
        "Berapa orang tewas dalam serangan konvoi bantuan PBB?"
    assert with_context("Siapa dia?", []) == "Siapa dia?"
