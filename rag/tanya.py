"""The Python API: ``Tanya.open(home)`` then ``.ask()``, ``.retrieve()``, ``.add()``, ``.delete()``.

One object holds the model and the index, so a batch of questions loads them once.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from index.documents import Document, is_valid_unicode, read_paths
from index.errors import InputError
from index.filters import DocumentFilter
from index.home import DataHome
from index.index import Index, IndexReport
from index.lexical import language, tokenize, words
from index.store import DocumentInfo, SentenceRef
from rag.answer import Answer, no_documents_answer
from rag.background import background_vectors
from rag.generation.check import Generation
from rag.generation.client import LLMClient, LLMSettings
from rag.params import Params
from rag.pipeline import Pipeline, Trace
from rag.reader.inference import Reader, load_reader
from rag.reader.model import compose_in_subprocess, is_composed
from rag.retriever import Candidates, RetrievedChunk, Scope, TanyaRetriever, collect_candidates, rank_chunks

MAX_QUESTION_CHARS = 2000
MAX_K = 1000
MAX_CONTEXT_QUESTIONS = 3  # how far back a chain of follow-ups reaches

# A follow-up that leans on the previous question ("Siapa dia?", "What did he say next?").
_REFERRING_WORDS = frozenset("""
    dia ia beliau mereka nya tersebut itu he she they him her his their them it its this that these
    those
    """.split())


class QuestionError(InputError):
    """The question cannot be asked (empty or too long); the message is for the user."""


_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})  # controls, zero-width/format characters, spaces


def check_question(question: str, what: str = "the question") -> str:
    question = (question or "").strip()
    # Zero-width or control characters alone are as empty as spaces (they were answered with a refusal).
    if all(unicodedata.category(c) in _INVISIBLE for c in question):
        raise QuestionError(f"{what} is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(f"{what} has {len(question):,} characters; the limit is {MAX_QUESTION_CHARS:,}")
    if not is_valid_unicode(question):
        raise QuestionError(f"{what} is not valid Unicode (it holds a lone surrogate)")
    return question


def with_context(question: str, history: Sequence[str]) -> str:
    """Carry the previous question's terms into a short or pronoun-only follow-up. The previous question
    is itself read in its own context, so a chain of follow-ups keeps the entity it started from."""
    if not history:
        return question
    refers = any(w in _REFERRING_WORDS for w in words(question))
    if refers or len(tokenize(question)) <= 2:
        previous = with_context(history[-1], history[-MAX_CONTEXT_QUESTIONS:-1])
        return f"{previous} {question}"
    return question


class Tanya:
    """``use_reader=False`` answers with the retrieval scorer alone (the pipeline before the reader;
    ``tanya eval`` compares the two)."""

    def __init__(self, index: Index, params: Params | None = None, use_reader: bool = True,
                 llm: LLMSettings | None = None) -> None:
        self.index = index
        self.params = params or Params.load()
        self.use_reader = use_reader
        self._reader: Reader | None = None  # checked and loaded once, at the first question
        self.llm = LLMClient(llm) if llm else None

    @classmethod
    def open(cls, home: Path | str | None = None, chroma_url: str | None = None, use_reader: bool = True,
             llm: LLMSettings | None = None) -> Tanya:
        """``llm`` (``LLMSettings.resolve(url)``, off by default) adds a checked generated answer."""
        return cls(Index(DataHome.resolve(home, chroma_url)), use_reader=use_reader, llm=llm)

    @property
    def reader(self) -> Reader | None:
        """The reader, composed on first use if ``tanya provision`` has not done it yet (raises
        ReaderUnavailable with what to do when its weights are missing or damaged)."""
        if not self.use_reader:
            return None
        if self._reader is None:
            model_dir = self.index.home.model_dir
            if not is_composed(model_dir):
                compose_in_subprocess(model_dir)
            self._reader = load_reader(model_dir)
        return self._reader

    def close(self) -> None:
        self.index.close()

    def warm_up(self) -> None:
        """Load the model, embed the background sample, and open Chroma's chunk index and BM25 now
        (Chroma loads an index on its first query: ~0.4 s at 100k chunks), so the first question is
        not slow."""
        vectors = background_vectors(self.index.embedder)
        if self.reader is not None:
            self.reader.read("query", ["warm up"])
        if len(self.index.bm25):
            self.index.vectors.query_chunks(vectors[0], 1)

    def add(self, docs: Sequence[Document], progress: bool = False) -> IndexReport:
        return self.index.add(list(docs), progress=progress)

    def add_paths(self, paths: Sequence[Path | str], progress: bool = False) -> IndexReport:
        return self.add(read_paths([Path(p) for p in paths]), progress=progress)

    def delete(self, doc_id: str) -> bool:
        return self.index.delete(doc_id)

    def documents(self) -> list[DocumentInfo]:
        return self.index.store.documents()

    def document(self, doc_id: str) -> Document | None:
        return self.index.store.get(doc_id)

    # What the CLI, the HTTP API and the web page read besides answers, so that none of them reaches
    # into the store (its backend may change).

    @property
    def home(self) -> Path:
        return self.index.home.root

    def counts(self) -> tuple[int, int, int]:
        """Documents, sentences and chunks in the index."""
        return self.index.store.counts()

    def is_empty(self) -> bool:
        return len(self.index.bm25) == 0  # in memory: counting the store would scan it

    def snapshot(self) -> AbstractContextManager[None]:
        """Reads inside see one committed state, even while a writer commits (e.g. hits and their titles)."""
        return self.index.store.snapshot()

    def titles(self, doc_ids: set[str]) -> dict[str, tuple[str, str | None, str | None, str | None]]:
        """(title, date, source, url) of each document."""
        return self.index.store.titles(doc_ids)

    def sentences(self, doc_id: str) -> list[SentenceRef]:
        """The document's sentences with their offsets, in reading order."""
        return self.index.store.sentences(doc_id)

    def sources(self) -> list[tuple[str, int]]:
        """Each publisher with how many documents it has, most first."""
        return self.index.store.sources()

    def allowed_documents(self, doc_filter: DocumentFilter) -> set[str]:
        return self.index.store.allowed_documents(doc_filter)

    def retrieve(self, query: str, k: int = 10, since: str | None = None, until: str | None = None,
                 source: str | Sequence[str] | None = None, doc_filter: DocumentFilter | None = None
                 ) -> list[RetrievedChunk]:
        """The ``k`` best chunks (of the documents published ``since``..``until`` by ``source``, or
        ``doc_filter``'s, when given: index/filters.py; none when no document matches)."""
        if not 1 <= k <= MAX_K:
            raise InputError(f"k must be between 1 and {MAX_K}")
        query, doc_filter = check_question(query), one_filter(doc_filter, since, until, source)
        with self.index.store.snapshot():
            scope = Scope.of(self.index, doc_filter) if doc_filter else None
            cands = collect_candidates(self.index, query, scope=scope)
            return rank_chunks(self.index, cands, self.params.for_language(cands.lang), k)

    def ask(self, question: str, history: Sequence[str] = (), max_citations: int = 3, since: str | None = None,
            until: str | None = None, source: str | Sequence[str] | None = None, generate: bool = True,
            doc_filter: DocumentFilter | None = None) -> Answer:
        """An answer of up to ``max_citations`` cited sentences (or a refusal). ``history`` holds the
        conversation's earlier questions, oldest first, for follow-ups such as "Siapa dia?". ``since``,
        ``until`` (ISO dates, inclusive) and ``source`` (publishers), or a parsed ``doc_filter``, restrict
        it to the documents they allow (index/filters.py); when none matches, the answer says so
        (``filter.documents`` is 0). With an LLM configured and ``generate``, ``answer.generated`` holds
        its checked answer (the chat passes ``generate=False`` and streams ``generation(answer)`` itself)."""
        return self.ask_traced(question, history, max_citations, since, until, source, generate, doc_filter).answer

    def ask_traced(self, question: str, history: Sequence[str] = (), max_citations: int = 3,
                   since: str | None = None, until: str | None = None, source: str | Sequence[str] | None = None,
                   generate: bool = True, doc_filter: DocumentFilter | None = None) -> Trace:
        """``ask``, with what each stage of the pipeline saw and decided (rag/pipeline.py)."""
        question = check_question(question)
        history = [check_question(h, f"history item {i}")  # the same rules as a question
                   for i, h in enumerate(history, start=1) if h and h.strip()]
        if not 1 <= max_citations <= 10:
            raise InputError("max_citations must be between 1 and 10")
        doc_filter = one_filter(doc_filter, since, until, source)
        with self.index.store.snapshot():  # one committed state, even while a writer commits
            scope = Scope.of(self.index, doc_filter) if doc_filter else None
            if scope is not None and not scope.doc_ids:
                lang = language(question)
                answer = no_documents_answer(question, lang, scope.filter, self.index.store.sources())
                return Trace(question, Candidates.none(question, lang), answer=answer)
            trace = self.pipeline.run(question, with_context(question, history), max_citations, scope)
        if scope is not None:
            trace.answer.filter = scope.filter.to_json(len(scope.doc_ids))
        generation = self.generation(trace.answer) if generate else None
        if generation is not None:
            trace.answer.generated = generation.run()
        return trace

    @property
    def pipeline(self) -> Pipeline:
        return Pipeline(self.index, self.params, self.reader)

    def generation(self, answer: Answer) -> Generation | None:
        """The LLM's answer over ``answer``'s citations, checked as it arrives (rag/generation/check.py); None
        without an LLM or for a refusal, which has nothing to ground an answer on."""
        if self.llm is None or answer.abstained or not answer.citations:
            return None
        short = answer.short_answer.text if answer.short_answer else None
        return Generation(self.llm, answer.question, {c.n: c.sentence for c in answer.citations}, short)

    def matching_documents(self, since: str | None = None, until: str | None = None,
                           source: str | Sequence[str] | None = None, doc_filter: DocumentFilter | None = None
                           ) -> dict | None:
        """The filter these values make, with how many documents it allows (None when they restrict nothing):
        what ``ask`` reports as its answer's ``filter``."""
        doc_filter = one_filter(doc_filter, since, until, source)
        if doc_filter is None:
            return None
        return doc_filter.to_json(len(self.index.store.allowed_documents(doc_filter)))

    def as_retriever(self, similarity_top_k: int = 10, since: str | None = None, until: str | None = None,
                     source: str | Sequence[str] | None = None, doc_filter: DocumentFilter | None = None
                     ) -> TanyaRetriever:
        return TanyaRetriever(self.index, self.params, similarity_top_k, one_filter(doc_filter, since, until, source))


def one_filter(doc_filter: DocumentFilter | None, since: str | None, until: str | None,
               source: str | Sequence[str] | None) -> DocumentFilter | None:
    """The Python API takes a parsed filter or its three values (parsed here, once); not both."""
    if doc_filter is None:
        return DocumentFilter.parse(since, until, source)
    if since or until or source:
        raise InputError("give either doc_filter or since/until/source, not both")
    return doc_filter if doc_filter.since or doc_filter.until or doc_filter.sources else None
