"""Training and calibration data for the reader (``make train-reader``; see eval/train_reader.py).

Every example is a (question, passage, answer) triple, the answer a character span of the passage or
None (the passage does not answer the question). Sources, all train splits:

- IDK-MRC train (Indonesian Wikipedia): answerable questions, and unanswerable ones written to be on
  the paragraph's topic: the refusals that matter. A slice of its paragraphs (``CALIBRATION_SHARE``,
  chosen by a hash of the paragraph) is held out of training for calibrating the refusal;
- TyDi QA-id train: its questions not already in IDK-MRC (IDK-MRC was built from TyDi QA);
- FacQA train (Kompas news) and its 500 English translations (``eval/data/facqa_en.jsonl``);
- hard negatives: for each answerable question, the best passage Tanya's own retrieval finds in the
  same pool that is not the question's own and does not contain its answer text;
- candidate groups (``mine_candidate_groups``, the ranking stage): the sentences Tanya's pipeline hands
  the reader for a question, each marked with the answer span it holds (if any), so the reader learns
  to pick among exactly the candidates it is shown at question time.

The valid splits are never read here: they are what the reader is measured on.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from eval import facqa
from index.documents import Document

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
IDK_TRAIN = SHARED / "idk_mrc" / "train.json"
TYDI_TRAIN = SHARED / "tydiqa_id" / "train.json"
CALIBRATION_SHARE = 0.08


@dataclass(frozen=True)
class ReaderExample:
    question: str
    passage: str
    answer_start: int | None  # character offset in ``passage``; None = no answer here
    answer_text: str | None
    source: str  # idk, idk-unans, tydi, facqa, facqa-en, *-hardneg

    @property
    def answerable(self) -> bool:
        return self.answer_start is not None


def _norm(question: str) -> str:
    return " ".join(question.lower().split())


def held_out(context: str) -> bool:
    """A fixed share of paragraphs, by hash: the same on every run, never trained on."""
    digest = hashlib.sha256(context.encode("utf-8")).digest()
    return digest[0] / 256 < CALIBRATION_SHARE


def squad_examples(path: Path, source: str, skip_questions: set[str] | None = None,
                   calibration: bool = False) -> list[ReaderExample]:
    """SQuAD-2.0-style paragraphs (IDK-MRC, TyDi QA); ``calibration`` picks the held-out slice."""
    out = []
    for para in json.loads(path.read_text(encoding="utf-8")):
        context = para["context"]
        if held_out(context) != calibration:
            continue
        for qa in para["qas"]:
            if skip_questions is not None and _norm(qa["question"]) in skip_questions:
                continue
            question = qa["question"].strip()
            if qa.get("is_impossible") or not qa["answers"]:
                out.append(ReaderExample(question, context, None, None, f"{source}-unans"))
                continue
            answer = qa["answers"][0]
            start, text = int(answer["answer_start"]), answer["text"]
            if context[start : start + len(text)] != text:  # a few offsets are off: find the text itself
                found = context.find(text)
                if found < 0:
                    continue
                start = found
            out.append(ReaderExample(question, context, start, text, source))
    return out


def facqa_examples() -> list[ReaderExample]:
    _, items = facqa.load(("train",))
    english = facqa.english_items(items)["train"]
    out = []
    for item, source in [(it, "facqa") for it in items["train"]] + [(it, "facqa-en") for it in english]:
        answer = next((a for a in item.answers if a and a in item.passage), None)
        if answer is None:
            continue
        out.append(ReaderExample(item.question, item.passage, item.passage.find(answer), answer, source))
    return out


def mine_hard_negatives(examples: list[ReaderExample], per_question: int = 1, seed: int = 13
                        ) -> list[ReaderExample]:
    """For each answerable example, the best-ranked other passage of the pool (Tanya's hybrid
    retrieval over an index of every passage) that does not contain the answer text."""
    from eval.suite import eval_index
    from index.home import DataHome

    passages = sorted({ex.passage for ex in examples})
    doc_of = {p: f"p{i:05d}" for i, p in enumerate(passages)}
    text_of = {d: p for p, d in doc_of.items()}
    with tempfile.TemporaryDirectory(prefix="tanya-mining-") as home:
        tanya = eval_index(Path(home), DataHome.resolve().model_dir)  # the user's model, not a copy
        try:
            tanya.add([Document(d, p, p[:60]) for p, d in doc_of.items()], progress=True)
            out = []
            for ex in tqdm([e for e in examples if e.answerable], desc="mining hard negatives", file=sys.stderr):
                taken = 0
                for hit in tanya.retrieve(ex.question, k=8):
                    text = text_of[hit.doc_id]
                    if text == ex.passage or (ex.answer_text and ex.answer_text.lower() in text.lower()):
                        continue
                    out.append(ReaderExample(ex.question, text, None, None, f"{ex.source}-hardneg"))
                    taken += 1
                    if taken >= per_question:
                        break
        finally:
            tanya.close()
    random.Random(seed).shuffle(out)
    return out


def mine_lexical_negatives(examples: list[ReaderExample], pool: list[ReaderExample], seed: int = 13
                           ) -> list[ReaderExample]:
    """The same as ``mine_hard_negatives`` with Tanya's BM25 side only (its Indonesian analyser,
    bm25s's scoring): for the Wikipedia pool, where indexing every paragraph with vectors would take
    a quarter of an hour on two cores."""
    import bm25s

    from index.lexical import tokenize

    passages = sorted({ex.passage for ex in pool})
    retriever = bm25s.BM25()
    retriever.index([tokenize(p) for p in tqdm(passages, desc="BM25 over the pool", file=sys.stderr)],
                    show_progress=False)
    out = []
    for ex in tqdm([e for e in examples if e.answerable], desc="mining hard negatives", file=sys.stderr):
        terms = tokenize(ex.question)
        if not terms:
            continue
        docs, _ = retriever.retrieve([terms], k=min(8, len(passages)), show_progress=False)
        for i in docs[0]:
            text = passages[int(i)]
            if text == ex.passage or (ex.answer_text and ex.answer_text.lower() in text.lower()):
                continue
            out.append(ReaderExample(ex.question, text, None, None, f"{ex.source}-hardneg"))
            break
    random.Random(seed).shuffle(out)
    return out


def training_examples(seed: int = 13, hard_negative_share: float = 0.5) -> list[ReaderExample]:
    idk = squad_examples(IDK_TRAIN, "idk")
    idk_questions = {_norm(ex.question) for ex in idk} | {
        _norm(ex.question) for ex in squad_examples(IDK_TRAIN, "idk", calibration=True)}
    tydi = squad_examples(TYDI_TRAIN, "tydi", skip_questions=idk_questions)
    news = facqa_examples()
    wiki_pos = [ex for ex in idk + tydi if ex.answerable]
    rng = random.Random(seed)
    wiki_sample = rng.sample(wiki_pos, int(len(wiki_pos) * hard_negative_share))
    negatives = mine_hard_negatives(news) + mine_lexical_negatives(wiki_sample, idk + tydi)
    examples = idk + tydi + news + negatives
    rng.shuffle(examples)
    return examples


def calibration_examples() -> list[ReaderExample]:
    """The held-out IDK-MRC train paragraphs' questions (never trained on)."""
    return squad_examples(IDK_TRAIN, "idk", calibration=True)


@dataclass(frozen=True)
class CandidateGroup:
    """The sentences the pipeline reads for one question (rag/pipeline.py ``Trace.read``), with the
    answer's character span in each sentence that holds it (from the question's own document), else None."""

    question: str
    sentences: list[str]
    spans: list[list[int] | None]
    source: str  # facqa, facqa-en, facqa-absent, facqa-en-absent, idk, idk-unans

    @property
    def answerable(self) -> bool:
        return any(s is not None for s in self.spans)


def answer_span(sentence: str, answer: str) -> list[int] | None:
    at = sentence.find(answer)
    if at < 0:
        at = sentence.lower().find(answer.lower())
    return None if at < 0 else [at, at + len(answer)]


def pipeline_groups(tanya, questions: list[tuple[str, str | None, str | None, str]]) -> list[CandidateGroup]:
    """For each (question, gold doc id or None, answer text or None, source): the sentences the
    pipeline reads for it (rag/pipeline.py's trace; "-absent": as if the gold document were not there)."""
    from rag.pipeline import Pipeline

    out = []
    # Without the reader: which sentences it reads is decided before it runs (Trace.read).
    pipeline = Pipeline(tanya.index, tanya.params, reader=None)
    for question, gold, answer, source in tqdm(questions, desc="candidate groups", file=sys.stderr):
        absent = source.endswith("-absent")
        trace = pipeline.run(question, leave_out=gold if absent else None)
        if trace.evidence is None:
            continue
        refs = [trace.evidence.refs[i] for i in trace.read]
        spans = [answer_span(text, answer) if answer and ref.doc_id == gold and not absent else None
                 for ref, text in zip(refs, trace.read_texts, strict=True)]
        out.append(CandidateGroup(question, trace.read_texts, spans, source))
    return out


def mine_candidate_groups(seed: int = 13, idk_paragraphs: int = 2000) -> list[CandidateGroup]:
    """Candidate groups over two train-only indexes: every FacQA train passage (its questions, their
    English translations, and each asked once more with its own passage removed: not in the corpus),
    and ``idk_paragraphs`` IDK-MRC train paragraphs outside the calibration slice, indexed together
    (answerable questions, and unanswerable ones whose on-topic paragraph is in the index)."""
    from eval.suite import eval_index
    from index.home import DataHome

    rng = random.Random(seed)
    docs, items = facqa.load(("train",))
    english = facqa.english_items({"train": items["train"]})["train"]
    news: list[tuple[str, str | None, str | None, str]] = []
    for label, rows in (("facqa", items["train"]), ("facqa-en", english)):
        for it in rows:
            answer = next((a for a in it.answers if a and a in it.passage), None)
            if answer is not None:
                news.append((it.question, it.doc_id, answer, label))
                if rng.random() < 0.3:
                    news.append((it.question, it.doc_id, None, f"{label}-absent"))
    paragraphs = [p for p in json.loads(IDK_TRAIN.read_text(encoding="utf-8")) if not held_out(p["context"])]
    paragraphs = rng.sample(paragraphs, min(idk_paragraphs, len(paragraphs)))
    wiki: list[tuple[str, str | None, str | None, str]] = []
    for i, para in enumerate(paragraphs):
        for qa in para["qas"]:
            answerable = not qa.get("is_impossible") and qa["answers"]
            wiki.append((qa["question"].strip(), f"idk-{i:05d}", qa["answers"][0]["text"] if answerable else None,
                         "idk" if answerable else "idk-unans"))
    out: list[CandidateGroup] = []
    for pool, questions in ((docs, news),
                            ([Document(f"idk-{i:05d}", p["context"], p["context"][:60])
                              for i, p in enumerate(paragraphs)], wiki)):
        with tempfile.TemporaryDirectory(prefix="tanya-groups-") as home:
            tanya = eval_index(Path(home), DataHome.resolve().model_dir)  # the user's model, not a copy
            try:
                tanya.add(pool, progress=True)
                out += pipeline_groups(tanya, questions)
            finally:
                tanya.close()
    rng.shuffle(out)
    return out


def save(examples: list[ReaderExample] | list[CandidateGroup], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for ex in examples:
            handle.write(json.dumps(ex.__dict__, ensure_ascii=False) + "\n")


def load(path: Path) -> list[ReaderExample]:
    return [ReaderExample(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]


def load_groups(path: Path) -> list[CandidateGroup]:
    return [CandidateGroup(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/reader/train.jsonl")
    rows = training_examples()
    save(rows, target)
    from collections import Counter

    print(Counter(ex.source for ex in rows), file=sys.stderr)
