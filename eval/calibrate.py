"""Fit Tanya's scoring parameters on FacQA train and report them on FacQA valid.

    python -m eval.calibrate [--home DIR] [--write]

1. Fusion weight: the BM25/dense mix that maximises gold-passage R@1 (MRR@10 breaks ties).
2. Sentence scorer: weights that maximise "the best sentence holds the gold answer".
3. Refusal: a logistic model over evidence features, trained on each question asked normally
   (answerable) and with its own passage removed (not in the corpus); the threshold refuses at most
   5% of answerable Indonesian train questions (2% of English ones, see MAX_ANSWERABLE_REFUSED).
``--write`` saves the result to ``rag/params.json`` with the figures in ``_notes``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from eval import facqa
from eval.metrics import contains_answer, first_rank, mrr_at, recall_at
from eval.suite import ranking_modes
from rag.evidence import (
    SentenceEvidence,
    answerable_probability,
    choose_sentences,
    gather_sentences,
    refusal_features,
)
from rag.params import Params, ScoringParams
from rag.retriever import Candidates, collect_candidates
from rag.tanya import Tanya

# Share of answerable train questions the refusal threshold may refuse, per question language.
# English gets a smaller budget: fitted on translated FacQA questions, a 5% budget refused 27% of the
# seed set's answerable English questions (1 of 26 at 2%): the cross-lingual evidence shifts between
# question sets more than the Indonesian one. An exact, checkable citation is the lesser harm.
# See eval/README.md.
MAX_ANSWERABLE_REFUSED = {"id": 0.05, "en": 0.02}


@dataclass
class Observed:
    item: facqa.FacQAItem
    cands: Candidates
    evidence: SentenceEvidence | None = None
    texts: list[str] | None = None


def open_facqa(home: Path | None) -> Tanya:
    """A Tanya index of every unique FacQA train+valid passage (built once per home)."""
    docs, _ = facqa.load()
    tanya = Tanya.open(home or Path(tempfile.mkdtemp(prefix="tanya-facqa-")))
    tanya.add(docs, progress=True)
    return tanya


def ranks(observed: list[Observed], scores_of) -> list[int | None]:
    out = []
    for ob in observed:
        order = np.argsort(-scores_of(ob.cands), kind="stable")
        out.append(first_rank([ob.cands.keys[i][0] for i in order], ob.item.doc_id))
    return out


def retrieval_table(observed: list[Observed], params: ScoringParams) -> dict[str, dict[str, float]]:
    table = {}
    for name, fn in ranking_modes(lambda _: params).items():
        r = ranks(observed, fn)
        table[name] = {"R@1": recall_at(r, 1), "R@5": recall_at(r, 5), "R@10": recall_at(r, 10),
                       "MRR@10": mrr_at(r, 10)}
    return table


def fit_fusion(observed: list[Observed], base: ScoringParams) -> ScoringParams:
    best = None
    for w in np.round(np.arange(0.0, 1.01, 0.05), 2):
        params = replace(base, bm25_weight=float(w))
        r = ranks(observed, lambda c, p=params: c.fused(p))
        key = (recall_at(r, 1), mrr_at(r, 10))
        if best is None or key > best[0]:
            best = (key, params)
    assert best is not None
    return best[1]


def attach_evidence(tanya: Tanya, observed: list[Observed], params: ScoringParams) -> None:
    for ob in observed:
        ob.evidence = gather_sentences(tanya.index, ob.cands, params)
        if ob.evidence is not None:
            ob.texts = [tanya.index.store.sentence_text(r) for r in ob.evidence.refs]


def citation_rates(observed: list[Observed], params: ScoringParams) -> dict[str, float]:
    """As the answer would cite (refusal aside): is the first citation from the gold passage, and do
    the cited sentences hold the gold answer? Also the mean number of citations."""
    first_gold = answer_in = cited = 0
    for ob in observed:
        if ob.evidence is None or ob.texts is None:
            continue
        picked = [i for i, _ in choose_sentences(ob.evidence, params)]
        first_gold += ob.evidence.refs[picked[0]].doc_id == ob.item.doc_id
        answer_in += contains_answer(" ".join(ob.texts[i] for i in picked), ob.item.answers)
        cited += len(picked)
    n = len(observed)
    return {"gold_cited_first": first_gold / n, "answer_in_citations": answer_in / n, "citations_mean": cited / n}


def best_sentence_hits(observed: list[Observed], params: ScoringParams) -> float:
    hits = 0
    for ob in observed:
        if ob.evidence is None or ob.texts is None:
            continue
        best = int(np.argmax(ob.evidence.scores(params)))
        hits += ob.evidence.refs[best].doc_id == ob.item.doc_id and contains_answer(ob.texts[best], ob.item.answers)
    return hits / len(observed)


def fit_sentences(observed: list[Observed], base: ScoringParams) -> ScoringParams:
    grid = itertools.product([0.5, 1.0], [0.0, 0.5, 1.0, 2.0], [0.0, 0.5, 1.0, 2.0, 4.0], [0.0, 0.25, 0.5, 1.0])
    scored = [(best_sentence_hits(observed, p), p) for d, lex, ch, at in grid
              for p in [replace(base, sentence_dense=d, sentence_lexical=lex, sentence_chunk=ch,
                                sentence_answer_type=at)]]
    best = max(scored, key=lambda s: s[0])[1]
    # The widest extra-sentence margin that keeps answers short (at most 1.5 citations on average).
    for margin in (0.2, 0.1, 0.05, 0.02, 0.0):
        candidate = replace(best, extra_sentence_margin=margin)
        if citation_rates(observed, candidate)["citations_mean"] <= 1.5:
            return candidate
    return replace(best, extra_sentence_margin=0.0)


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 3000, lr: float = 0.5) -> tuple[np.ndarray, float]:
    """Plain L2-regularised logistic regression by gradient descent (features are standardised)."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / std
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        w -= lr * (z.T @ (p - y) / len(y) + 1e-3 * w)
        b -= lr * float(np.mean(p - y))
    return w / std, b - float(np.dot(w / std, mean))  # back to raw-feature units


def refusal_data(tanya: Tanya, observed: list[Observed], params: ScoringParams) -> tuple[np.ndarray, np.ndarray]:
    feats, labels = [], []
    for ob in observed:
        if ob.evidence is not None:
            feats.append(refusal_features(ob.cands, ob.evidence))
            labels.append(1.0)
        removed = ob.cands.without_doc(ob.item.doc_id)
        ev = gather_sentences(tanya.index, removed, params)
        if ev is not None:
            feats.append(refusal_features(removed, ev))
            labels.append(0.0)
    return np.array(feats), np.array(labels)


def fit_refusal(tanya: Tanya, observed: list[Observed], params: ScoringParams, budget: float) -> ScoringParams:
    x, y = refusal_data(tanya, observed, params)
    weights, bias = fit_logistic(x, y)
    fitted = replace(params, refusal_weights=[round(float(v), 6) for v in weights], refusal_bias=round(bias, 6))
    probs = np.array([answerable_probability(f, fitted) for f in x[y == 1]])
    threshold = float(np.quantile(probs, budget))
    return replace(fitted, refusal_threshold=round(threshold, 6))


def refusal_report(tanya: Tanya, observed: list[Observed], params: ScoringParams) -> dict[str, float]:
    x, y = refusal_data(tanya, observed, params)
    refused = np.array([answerable_probability(f, params) < params.refusal_threshold for f in x])
    return {"answerable_refused": float(refused[y == 1].mean()),
            "not_in_corpus_refused": float(refused[y == 0].mean())}


def observe(tanya: Tanya, items: list[facqa.FacQAItem], label: str) -> list[Observed]:
    return [Observed(item, collect_candidates(tanya.index, item.question))
            for item in tqdm(items, desc=f"retrieving {label}", file=sys.stderr)]


def fit_language(tanya: Tanya, train: list[Observed], lang: str) -> ScoringParams:
    params = fit_fusion(train, ScoringParams())
    attach_evidence(tanya, train, params)
    params = fit_sentences(train, params)
    attach_evidence(tanya, train, params)
    return fit_refusal(tanya, train, params, MAX_ANSWERABLE_REFUSED[lang])


def report(tanya: Tanya, observed: list[Observed], params: ScoringParams) -> dict:
    """Figures for one question set. ``citations_by_fusion`` runs the same sentence scorer on BM25-only
    and dense-only chunk rankings, so the fusion's share of the citation quality is visible."""
    by_fusion = {}
    for mode, weight in (("bm25", 1.0), ("dense", 0.0), ("hybrid", params.bm25_weight)):
        variant = replace(params, bm25_weight=weight)
        attach_evidence(tanya, observed, variant)
        by_fusion[mode] = citation_rates(observed, variant)
    attach_evidence(tanya, observed, params)
    return {"questions": len(observed), "retrieval": retrieval_table(observed, params),
            **citation_rates(observed, params), "citations_by_fusion": by_fusion,
            "refusal": refusal_report(tanya, observed, params)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="reuse a data home holding the FacQA index")
    parser.add_argument("--write", action="store_true", help="save to rag/params.json")
    args = parser.parse_args(argv)

    tanya = open_facqa(args.home)
    _, items = facqa.load()
    english = facqa.english_items(items)
    sets = {("id", "train"): items["train"], ("id", "valid"): items["valid"],
            ("en", "train"): english["train"], ("en", "valid"): english["valid"]}
    observed = {key: observe(tanya, rows, "/".join(key)) for key, rows in sets.items() if rows}
    fitted = {lang: fit_language(tanya, observed[(lang, "train")], lang) for lang in ("id", "en")
              if (lang, "train") in observed}
    params = Params(**fitted)
    notes = {f"{lang}/{split}": report(tanya, obs, params.for_language(lang))
             for (lang, split), obs in observed.items()}
    import json

    print(json.dumps({"params": {k: v.__dict__ for k, v in fitted.items()}, **notes}, indent=2))
    if args.write:
        params.save(notes={"fitted_by": "python -m eval.calibrate --write", **notes})
    return 0


if __name__ == "__main__":
    sys.exit(main())
