"""The ``tanya`` command line: index, ask, retrieve, docs, show, delete, check, chat, serve, eval, provision."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import index  # noqa: F401  (offline switches first)
from index.documents import InputError
from index.index import IndexBusy
from index.vectors import StoreInUse, StoreUnavailable

EXIT_USAGE = 2
EXIT_ERROR = 1
USER_ERRORS = (InputError, IndexBusy, StoreInUse, StoreUnavailable)  # shown as one line; anything else is a bug
# Arguments that name files: bytes that are not UTF-8 (a Latin-1 file name) reach Python as surrogates, which
# the file system takes back as they came. Every other argument is text and must be UTF-8.
PATH_ARGUMENTS = {"paths", "home", "out", "gold", "corpus"}
# Control characters (C0, DEL, C1) in document text or titles would reach the terminal raw: an escape
# sequence can retitle the window, rewrite what is shown, or hide text. Shown as \x.. instead.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
_C1 = re.compile(r"[\x7f-\x9f]")


def printable(text: str, keep_lines: bool = True) -> str:
    """``text`` for a terminal: controls escaped; newlines and tabs kept unless ``keep_lines`` is False."""
    shown = _CONTROLS.sub(lambda m: repr(m.group())[1:-1], text)
    return shown if keep_lines else shown.replace("\r\n", "\\r\\n").replace("\n", "\\n").replace("\t", "\\t")


def json_line(row: object) -> str:
    """One JSON line; DEL and C1 controls escaped too (json.dumps escapes only C0), the same values."""
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(row, ensure_ascii=False))


def check_text_arguments(args: argparse.Namespace) -> None:
    for name, given in vars(args).items():
        if name in PATH_ARGUMENTS:
            continue
        for value in given if isinstance(given, list) else [given]:  # --source may be repeated
            if not isinstance(value, str):
                continue
            bad = next((c for c in value if "\udc80" <= c <= "\udcff"), None)
            if bad is not None:
                raise InputError(f"the {name.replace('_', ' ')} argument is not UTF-8 text (byte "
                                 f"0x{ord(bad) - 0xDC00:02x} at character {value.index(bad) + 1})")


def _open(args: argparse.Namespace, need_documents: bool = False):
    """Open the index (imports are lazy so `tanya --help` stays instant)."""
    from rag.tanya import Tanya

    tanya = Tanya.open(args.home, args.chroma_url)
    if need_documents and tanya.index.store.counts()[0] == 0:
        raise InputError(f"the index in {tanya.index.home.root} is empty: run `tanya index PATH` first")
    return tanya


def _filters(args: argparse.Namespace) -> dict:
    """The --since/--until/--source values, as ``Tanya.ask`` and ``Tanya.retrieve`` take them."""
    return {"since": args.since, "until": args.until, "source": args.source}


def _filter_note(doc_filter: dict | None) -> str:
    if doc_filter is None:
        return ""
    from index.filters import DocumentFilter

    described = DocumentFilter.from_json(doc_filter).describe()
    return f"filter: {described}; {doc_filter['documents']} documents match"


def _print_answer(answer, out=sys.stdout) -> None:
    if answer.short_answer:  # the reader's short answer first, then the sentences that hold it
        print(f"» {printable(answer.short_answer.text, keep_lines=False)}\n", file=out)
    print(printable(answer.answer), file=out)
    if answer.citations:
        print(file=out)
        for c in answer.citations:
            when = f", {c.date}" if c.date else ""
            print(f"[{c.n}] {printable(c.title, keep_lines=False)} ({c.doc_id}{when}, chars {c.start}-{c.end})",
                  file=out)
    if answer.filter is not None:
        print(f"\n({printable(_filter_note(answer.filter), keep_lines=False)})", file=out)


def cmd_index(args: argparse.Namespace) -> int:
    from index.documents import read_paths

    docs = read_paths([Path(p) for p in args.paths])  # validate everything before touching the index
    tanya = _open(args)
    report = tanya.add(docs, progress=not args.quiet)
    docs_n, sentences_n, chunks_n = tanya.index.store.counts()
    print(f"{report.summary()}. Index: {docs_n} documents, {sentences_n} sentences, {chunks_n} chunks.")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.tanya import QuestionError, check_question

    tanya = _open(args, need_documents=True)
    if args.question == "-":
        # One question per stdin line -> one JSON object per stdout line (the batch contract).
        for line in sys.stdin:
            question = line.strip()
            if not question:
                continue
            try:
                row = tanya.ask(question, **_filters(args)).to_json()
            except QuestionError as exc:
                row = {"question": question[:200], "error": str(exc), "answer": "", "abstained": True,
                       "citations": []}
            print(json_line(row), flush=True)
        return 0
    answer = tanya.ask(check_question(args.question), **_filters(args))
    if args.json:
        print(json_line(answer.to_json()))
    else:
        _print_answer(answer)
    return 0


def cmd_retrieve(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    tanya = _open(args, need_documents=True)
    with tanya.index.store.snapshot():  # the titles of the very documents retrieved
        hits = tanya.retrieve(args.query, k=args.k, **_filters(args))
        titles = tanya.index.store.titles({h.doc_id for h in hits}) if hits else {}
        matching = tanya.matching_documents(**_filters(args))
    if matching is not None:
        print(printable(_filter_note(matching), keep_lines=False), file=sys.stderr)
    if args.json:
        for h in hits:
            print(json_line({**asdict(h), "title": titles[h.doc_id][0]}))
        return 0
    for h in hits:
        snippet = printable(" ".join(h.text.split()))
        print(f"{h.rank:>2}. {h.score:.3f}  {h.doc_id}#{h.chunk} [{h.start}:{h.end}]  "
              f"dense {h.dense:.3f} bm25 {h.bm25:.2f}\n    {snippet[:160]}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    docs = _open(args).documents()
    if args.json:
        from dataclasses import asdict

        for d in docs:
            print(json_line(asdict(d)))
        return 0
    for d in docs:
        date, title = printable(d.date or "-", keep_lines=False), printable(d.title[:80], keep_lines=False)
        print(f"{d.doc_id}\t{d.sentences} sentences\t{date}\t{title}")
    print(f"{len(docs)} documents", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    doc = _open(args).document(args.doc_id)
    if doc is None:
        raise InputError(f"no document with id {args.doc_id!r} (see `tanya docs`)")
    print(doc.text if args.raw else printable(doc.text))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    if not _open(args).delete(args.doc_id):
        raise InputError(f"no document with id {args.doc_id!r} (see `tanya docs`)")
    print(f"deleted {args.doc_id}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from index.home import DataHome
    from index.index import Index

    # As found: opening an index normally would first clean up after a killed writer.
    report = Index(DataHome.resolve(args.home, args.chroma_url), finish_interrupted_writes=False).check()
    print(report.summary())
    return 0 if not report.problems else EXIT_ERROR


def cmd_chat(args: argparse.Namespace) -> int:
    from rag.tanya import QuestionError

    tanya = _open(args, need_documents=True)
    history: list[str] = []
    print("Tanya: ask about the articles in the corpus (Ctrl-D to leave).")
    while True:
        try:
            question = input("\n> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question:
            continue
        try:
            answer = tanya.ask(question, history=history, **_filters(args))
        except QuestionError as exc:
            print(f"error: {exc}")
            continue
        history.append(question)
        _print_answer(answer)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def cmd_serve(args: argparse.Namespace) -> int:
    import os
    import time

    import uvicorn

    from ui.api import create_app
    from ui.web import mount

    start = time.perf_counter()
    token = os.environ.get("TANYA_API_TOKEN") or None
    if args.host not in LOOPBACK and token is None:
        raise InputError(f"binding {args.host} exposes the index to the network: set TANYA_API_TOKEN (write "
                         "endpoints then need 'Authorization: Bearer <token>') or bind 127.0.0.1")
    tanya = _open(args)
    tanya.warm_up()
    app = mount(create_app(tanya, token), tanya, token)
    writes = "need 'Authorization: Bearer $TANYA_API_TOKEN'" if token else "are open (loopback only)"
    print(f"Tanya on http://{args.host}:{args.port}  (API /api, OpenAPI /docs, readiness /healthz); "
          f"write endpoints {writes}; loaded in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from eval.runner import evaluate
    from index.filters import DocumentFilter
    from index.home import DataHome

    sets = [s for s in args.sets.split(",") if s] if args.sets is not None else ([] if args.gold else
                                                                                  ["seed", "followups", "facqa", "idk"])
    evaluate(DataHome.resolve(args.home, args.chroma_url), sets, Path(args.out) if args.out else None,
             gold=Path(args.gold) if args.gold else None, corpus=Path(args.corpus) if args.corpus else None,
             limit=args.limit, command="tanya " + " ".join(sys.argv[1:]) if argv_is_cli() else "tanya eval",
             progress=not args.quiet, baseline=not args.no_baseline,
             doc_filter=DocumentFilter.parse(args.since, args.until, args.source))
    return 0


def argv_is_cli() -> bool:
    return Path(sys.argv[0]).name == "tanya"


def cmd_provision(args: argparse.Namespace) -> int:
    from index.embedder import configured_backend
    from index.home import DataHome
    from index.model import provision
    from index.onnx_embedder import export_int8
    from rag.reader_model import compose

    target = DataHome.resolve(args.home).model_dir
    provision(target)
    if configured_backend() == "onnx-int8":
        export_int8(target)
    compose(target)  # the reader: shipped weights checked (size, sha256), composed with e5, int8 ONNX
    print(f"model and reader ready in {target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tanya", description="Ask Indonesian news articles; answers cite "
                                     "their exact source sentences. Runs offline.")
    parser.add_argument("--home", help="data home (default: $TANYA_HOME or ~/.local/share/tanya)")
    parser.add_argument("--chroma-url", help="use a `chroma run` server, e.g. http://127.0.0.1:8000 "
                        "(default: $TANYA_CHROMA_URL, else embedded Chroma in the data home)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("index", cmd_index, "index folders, .txt/.md files, news pages (.html/.htm) or .jsonl files (incremental)")
    p.add_argument("paths", nargs="+", help="folder, .txt/.md/.html/.htm file or .jsonl file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    def add_filters(p: argparse.ArgumentParser) -> None:
        p.add_argument("--since", metavar="DATE", help="only articles published on or after DATE (YYYY-MM-DD, "
                       "YYYY-MM or YYYY; undated articles are left out)")
        p.add_argument("--until", metavar="DATE", help="only articles published on or before DATE")
        p.add_argument("--source", metavar="PUBLISHER", action="append",
                       help="only articles of this publisher (as `tanya docs` shows it, any case; repeat for several)")

    p = add("ask", cmd_ask, "answer a question with cited sentences ('-' reads one question per stdin line "
            "and writes JSON lines)")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    add_filters(p)
    p = add("retrieve", cmd_retrieve, "show the ranked chunks for a query (hybrid retrieval only)")
    p.add_argument("query")
    p.add_argument("-k", "--k", type=int, default=10)
    p.add_argument("--json", action="store_true")
    add_filters(p)
    p = add("docs", cmd_docs, "list the indexed documents")
    p.add_argument("--json", action="store_true")
    p = add("show", cmd_show, "print a document's text (control characters shown as \\x.. escapes)")
    p.add_argument("doc_id")
    p.add_argument("--raw", action="store_true", help="print the text exactly as stored, control characters too")
    p = add("delete", cmd_delete, "remove a document from the index")
    p.add_argument("doc_id")
    add("check", cmd_check, "verify that the documents, Chroma's vectors and BM25 agree (exit 1 if not)")
    p = add("chat", cmd_chat, "a conversation in the terminal (follow-up questions use the previous ones)")
    add_filters(p)
    p = add("serve", cmd_serve, "serve the HTTP API (and the web chat) on 127.0.0.1")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (non-loopback needs TANYA_API_TOKEN)")
    p.add_argument("--port", type=int, default=7860)
    p = add("eval", cmd_eval, "measure retrieval, citations, refusals and latency on gold question sets and "
            "write a report with plots")
    p.add_argument("--sets", help="comma-separated built-in sets: seed, followups, facqa, idk (default: all, or "
                   "none with --gold)")
    p.add_argument("--no-baseline", action="store_true", help="do not also answer every set without the reader")
    p.add_argument("--gold", help="your own gold questions (JSONL: id, question, lang, doc, evidence, answer, "
                   "answerable, follows)")
    p.add_argument("--corpus", help="index this folder/.jsonl for --gold (default: ask the data home's index)")
    p.add_argument("--out", help="report folder (default: DATA_HOME/eval/reports/TIMESTAMP)")
    p.add_argument("--limit", type=int, help="ask only the first N questions of each part (a quick look)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_filters(p)
    add("provision", cmd_provision, "convert the bundled embedding model (done automatically on first use)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_text_arguments(args)
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"tanya: error: {printable(str(exc), keep_lines=False)}", file=sys.stderr)  # one line, always
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
