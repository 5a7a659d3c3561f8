"""The web chat (Gradio), mounted at ``/`` by ``tanya serve`` next to the API.

An answer shows the reader's short answer in bold, then each cited sentence once with its ``[n]``; the
sources of the latest answer (number, title, date) are listed under the chat, and opening one shows the
whole article with the cited sentence highlighted by its offsets from the index (never by searching for
the string), the short answer marked inside it, scrolled into view. Article text, titles and questions are always
escaped: a document containing ``<script>`` shows those characters and runs nothing (the chat bubbles
too: Gradio renders a message as sanitised HTML even with ``render_markdown=False``, so each message is
escaped, and read back unescaped).

Writes (upload, delete) need the API token when ``tanya serve`` has one: Gradio's own endpoints
(``/gradio_api/...``) would otherwise be a way around the API's token check. Only files that came through
Gradio's upload route are accepted (see ``mount``).
"""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import Iterator
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers

from index.documents import Document, read_paths
from index.errors import IndexBusy, InputError, StoreUnavailable
from index.filters import DocumentFilter, first_day
from index.lexical import language
from rag.answer import Answer
from rag.tanya import QuestionError, Tanya, check_question
from ui.api import token_matches

log = logging.getLogger("tanya.web")

CITED_ID = "tanya-cited"
SPAN_ID = "tanya-short-answer"  # the short answer inside the highlighted sentence
TOKEN_COOKIE = "tanya_token"  # the page's token field, for Gradio's upload route (UploadNeedsToken)
MAX_UPLOAD = "50mb"  # per file; a document over 5M characters (index.documents) is refused with a reason
SCROLL_TO_CITED = f"() => document.getElementById('{CITED_ID}')?.scrollIntoView({{block: 'center'}})"

CSS = f"""
#tanya-chat .message {{ white-space: pre-wrap; }}
.tanya-article {{ max-height: 60vh; overflow-y: auto; line-height: 1.6; white-space: pre-wrap;
                 padding: 0.75rem 1rem; border: 1px solid var(--border-color-primary); border-radius: 8px; }}
#{CITED_ID} {{ background: #ffe58a; color: #111; padding: 0 2px; border-radius: 3px; }}
#{SPAN_ID} {{ text-decoration: underline; }}
.tanya-article h3 {{ margin-top: 0; white-space: normal; }}
"""

# UI strings follow the browser's language (Indonesian or English).
I18N = gr.I18n(
    en={"header": "## Tanya\nAnswers about your Indonesian news articles, each citing its source sentences.",
        "empty_chat": "Ask in Indonesian or English. Every answer quotes the articles and cites them; when the "
                      "articles do not hold the answer, Tanya says so.",
        "ask": "Ask", "placeholder": "Ask about the articles (Indonesian or English)…", "sources": "Sources",
        "open": "Open a source to read it in its article", "chat_tab": "Chat", "docs_tab": "Documents",
        "examples": "Try asking", "document": "Document", "delete": "Delete", "add": "Add to the index",
        "upload": "Add .txt, .md, .html or .jsonl files",
        "token": "API token (TANYA_API_TOKEN), needed to add or delete", "filters": "Filter by date and publisher",
        "since": "Published on or after (YYYY-MM-DD)", "until": "Published on or before (YYYY-MM-DD)",
        "publishers": "Publishers (none: all)", "order": "Sort by", "show": "Show"},
    id={"header": "## Tanya\nJawaban tentang artikel berita Anda, masing-masing dengan kalimat sumbernya.",
        "empty_chat": "Bertanyalah dalam bahasa Indonesia atau Inggris. Setiap jawaban mengutip artikel beserta "
                      "sumbernya; bila artikel tidak memuat jawabannya, Tanya akan mengatakannya.",
        "ask": "Tanya", "placeholder": "Tanyakan isi artikel (bahasa Indonesia atau Inggris)…",
        "sources": "Sumber", "open": "Buka sumber untuk membacanya di artikelnya", "chat_tab": "Obrolan",
        "docs_tab": "Dokumen", "examples": "Coba tanyakan", "document": "Dokumen", "delete": "Hapus",
        "add": "Tambahkan ke indeks", "upload": "Tambahkan berkas .txt, .md, .html atau .jsonl",
        "token": "Token API (TANYA_API_TOKEN), diperlukan untuk menambah atau menghapus",
        "filters": "Saring menurut tanggal dan penerbit", "since": "Terbit sejak (YYYY-MM-DD)",
        "until": "Terbit sampai (YYYY-MM-DD)", "publishers": "Penerbit (kosong: semua)", "order": "Urutkan",
        "show": "Tampilkan"},
)


def source_label(n: int, title: str, date: str | None = None) -> str:
    """A source under the chat: its number, title and date (the sentence itself is in the answer)."""
    when = f" ({date})" if date else ""
    return f"[{n}] {title[:80]}{when}"


def article_frame(doc: Document, body: str) -> str:
    """An article's title, id and date (escaped) above ``body`` (already-escaped HTML)."""
    date = f" · {html.escape(doc.date)}" if doc.date else ""
    return (f'<div class="tanya-article"><h3>{html.escape(doc.title)}</h3><small>{html.escape(doc.doc_id)}{date}'
            f"</small>\n\n{body}</div>")


def article_html(tanya: Tanya, doc_id: str, start: int, end: int, span: tuple[int, int] | None = None) -> str:
    """The article, escaped, with text[start:end] wrapped in the highlight, and inside it the short
    answer ``span`` (document offsets) in bold."""
    doc = tanya.document(doc_id)
    if doc is None:
        return "<p>(this document is no longer in the index)</p>"
    text = doc.text
    cited = html.escape(text[start:end])
    if span is not None and start <= span[0] < span[1] <= end:
        cited = (f"{html.escape(text[start:span[0]])}<strong id=\"{SPAN_ID}\">{html.escape(text[span[0]:span[1]])}"
                 f"</strong>{html.escape(text[span[1]:end])}")
    return article_frame(doc, f'{html.escape(text[:start])}<mark id="{CITED_ID}">{cited}</mark>'
                              f"{html.escape(text[end:])}")


def reply_html(answer: Answer, generated: str | None = None, note: str | None = None) -> str:
    """The assistant's bubble: the short answer in bold, then each cited sentence once with its [n] (and
    the filter it was asked under). Above them, when an LLM answered, its checked sentences so far
    (``generated``), marked as generated, or the ``note`` saying why there are none. Every piece of text
    is escaped; the only markup is the bold and the italic label."""
    body = bubble(answer.answer + filter_note(answer))
    if answer.short_answer is not None:
        body = f"<strong>{bubble(answer.short_answer.text)}</strong>\n\n{body}"
    english = language(answer.question) == "en"
    if generated:
        label = ("Generated; each sentence checked against the sources below" if english
                 else "Jawaban buatan model; tiap kalimat diperiksa terhadap sumber di bawah")
        return f"<em>{label}:</em> {bubble(generated)}\n\n---\n\n{body}"
    if note:
        return f"<em>{bubble(note)}</em>\n\n{body}"
    return body


def bubble(text: str) -> str:
    """A chat message's content: the text escaped, so that the bubble shows it literally."""
    return html.escape(text, quote=False)


def message_text(message: dict) -> str:
    """A chat message's text: Gradio hands messages back with content as a string or as a list of parts
    (escaped by ``bubble``)."""
    content = message.get("content")
    if isinstance(content, list):
        content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return html.unescape(content) if isinstance(content, str) else ""


def asked_before(messages: list[dict]) -> list[str]:
    """The conversation's earlier questions that can be asked (a refused one, e.g. empty, is no context)."""
    history = []
    for m in messages:
        if isinstance(m, dict) and m.get("role") == "user":
            try:
                history.append(check_question(message_text(m)))
            except QuestionError:
                continue
    return history


def example_questions(tanya: Tanya, limit: int = 3) -> list[str]:
    """A few questions about the corpus's own articles, for an empty chat."""
    def short(title: str, limit: int = 70) -> str:
        return title if len(title) <= limit else title[:limit].rsplit(" ", 1)[0].rstrip(" ,.…-–") + "…"

    return [f"Apa isi berita \u201c{short(d.title.rstrip(' .…'))}\u201d?" for d in tanya.documents()[:limit]]


DOCUMENT_COLUMNS = ["id", "title", "date", "publisher", "sentences"]
ORDERS = {  # the Documents tab's sort orders; undated documents come last in both date orders, and a
    # partial date (2019-09) counts as its first day
    "newest": lambda d: (d.date is None, -first_day(d.date) if d.date else 0, d.doc_id),
    "oldest": lambda d: (d.date is None, first_day(d.date) if d.date else 0, d.doc_id),
    "publisher": lambda d: (not d.source, (d.source or "").casefold(), d.doc_id),
    "id": lambda d: d.doc_id,
}


def documents_table(tanya: Tanya, since: str | None = None, until: str | None = None,
                    sources: list[str] | None = None, order: str = "id") -> list[list[object]]:
    """The Documents tab's rows: the documents a filter allows (index/filters.py), in ``order``."""
    docs = tanya.documents()
    doc_filter = DocumentFilter.parse(since, until, sources)
    if doc_filter is not None:
        allowed = tanya.allowed_documents(doc_filter)
        docs = [d for d in docs if d.doc_id in allowed]
    docs.sort(key=ORDERS.get(order, ORDERS["id"]))  # type: ignore[arg-type]
    return [[d.doc_id, d.title[:80], d.date or "", d.source or "", d.sentences] for d in docs]


def publisher_choices(tanya: Tanya) -> list[tuple[str, str]]:
    return [(f"{name} ({n})", name) for name, n in tanya.sources()]


def filter_note(answer: Answer) -> str:
    """The line under a filtered answer: what restricted it (the answer itself says when nothing matched)."""
    if answer.filter is None or answer.filter["documents"] == 0:
        return ""
    f, lang = answer.filter, language(answer.question)
    described = DocumentFilter.from_json(f).describe(lang)
    return f"\n\n(filter: {described}; {f['documents']} {'documents' if lang == 'en' else 'dokumen'})"


def document_choices(tanya: Tanya) -> list[tuple[str, str]]:
    return [(f"{d.title[:90]} ({d.doc_id})", d.doc_id) for d in tanya.documents()]


def whole_article_html(tanya: Tanya, doc_id: str | None) -> str:
    doc = tanya.document(doc_id) if doc_id else None
    return article_frame(doc, html.escape(doc.text)) if doc else ""


def build_ui(tanya: Tanya, api_token: str | None = None) -> gr.Blocks:
    def may_write(token: str | None) -> bool:
        return api_token is None or token_matches(token or "", api_token)

    refused = "⚠ adding or deleting documents needs the API token (TANYA_API_TOKEN)"

    with gr.Blocks(title="Tanya") as demo:
        citations = gr.State([])  # the latest answer's citations, as dicts
        gr.Markdown(I18N("header"), elem_id="tanya-header")
        with gr.Tab(I18N("chat_tab"), elem_id="tanya-chat-tab"):
            chatbot = gr.Chatbot(show_label=False, render_markdown=False, height=420, elem_id="tanya-chat",
                                 # Gradio translates an I18n placeholder at runtime; its type hint says str.
                                 placeholder=I18N("empty_chat"), buttons=["copy"])  # type: ignore[arg-type]
            with gr.Row():
                question = gr.Textbox(show_label=False, placeholder=I18N("placeholder"), scale=5, max_length=2000,
                                      elem_id="tanya-question", submit_btn=False)
                send = gr.Button(I18N("ask"), variant="primary", scale=1, elem_id="tanya-send")
            examples = gr.Dataset(components=[gr.Textbox(visible=False)], samples=[[q] for q in
                                                                                   example_questions(tanya)],
                                  label=I18N("examples"), elem_id="tanya-examples")
            with gr.Accordion(I18N("filters"), open=False, elem_id="tanya-filters"), gr.Row():  # type: ignore[arg-type]
                since = gr.Textbox(label=I18N("since"), max_length=40, elem_id="tanya-since")
                until = gr.Textbox(label=I18N("until"), max_length=40, elem_id="tanya-until")
                publishers = gr.Dropdown(choices=publisher_choices(tanya), multiselect=True,
                                         label=I18N("publishers"), elem_id="tanya-publishers")
            sources = gr.Radio(choices=[], label=I18N("sources"), info=I18N("open"), elem_id="tanya-sources",
                               type="index", visible=False)
            article = gr.HTML(elem_id="tanya-article")
        with gr.Tab(I18N("docs_tab"), elem_id="tanya-docs-tab") as docs_tab:
            with gr.Row():
                doc_since = gr.Textbox(label=I18N("since"), max_length=40, elem_id="tanya-doc-since")
                doc_until = gr.Textbox(label=I18N("until"), max_length=40, elem_id="tanya-doc-until")
                doc_publishers = gr.Dropdown(choices=publisher_choices(tanya), multiselect=True,
                                             label=I18N("publishers"), elem_id="tanya-doc-publishers")
                order = gr.Dropdown(choices=list(ORDERS), value="id", label=I18N("order"), elem_id="tanya-doc-order")
            show = gr.Button(I18N("show"), elem_id="tanya-doc-show")
            table = gr.Dataframe(value=lambda: documents_table(tanya), headers=DOCUMENT_COLUMNS,
                                 interactive=False, elem_id="tanya-doc-table", wrap=True)
            with gr.Row():
                chosen = gr.Dropdown(choices=document_choices(tanya), label=I18N("document"), scale=4,
                                     elem_id="tanya-doc-choice")
                delete = gr.Button(I18N("delete"), variant="stop", scale=1, elem_id="tanya-delete")
            token = gr.Textbox(label=I18N("token"), type="password", visible=api_token is not None,
                               elem_id="tanya-token")
            # The browser uploads a file as soon as it is chosen, to Gradio's own route, which cannot be given a
            # header: the token typed here goes with it as a cookie (UploadNeedsToken checks it first).
            token.change(None, token, None, js=f"(t) => {{ document.cookie = '{TOKEN_COOKIE}=' + "
                         "encodeURIComponent(t || '') + '; path=/; SameSite=Strict'; }")
            upload = gr.File(file_count="multiple", file_types=[".txt", ".md", ".html", ".htm", ".jsonl"],
                             label=I18N("upload"), elem_id="tanya-upload")
            add = gr.Button(I18N("add"), variant="primary", elem_id="tanya-add")
            status = gr.HTML(elem_id="tanya-doc-status")  # HTML of escaped text only: Markdown would render links
            document_view = gr.HTML(elem_id="tanya-doc-view")

        def respond(text: str, messages: list[dict], since: str | None = None, until: str | None = None,
                    publishers: list[str] | None = None) -> Iterator[tuple[Any, ...]]:
            """The extractive answer at once; then, with an LLM, its checked sentences as each one passes."""
            messages = messages or []
            try:
                doc_filter = DocumentFilter.parse(since, until, publishers)  # parsed once, here
                answer: Answer = tanya.ask(text, history=asked_before(messages), doc_filter=doc_filter,
                                           generate=False)
            except (InputError, StoreUnavailable) as exc:  # StoreUnavailable: e.g. the Chroma server is down
                messages = [*messages, {"role": "user", "content": bubble(text)},
                            {"role": "assistant", "content": bubble(f"⚠ {exc}")}]
                yield messages, "", [], gr.Radio(choices=[], visible=False), ""
                return
            cited = [dict(c.__dict__) for c in answer.citations]
            short = answer.short_answer
            if short is not None and cited:  # the short answer lies inside the first citation
                cited[0]["span"] = [short.start, short.end]
            choices = [source_label(c["n"], c["title"], c.get("date")) for c in cited]
            sources = gr.Radio(choices=choices, value=None, visible=bool(choices))
            asked = [*messages, {"role": "user", "content": bubble(text)}]
            yield [*asked, {"role": "assistant", "content": reply_html(answer)}], "", cited, sources, ""
            generation = tanya.generation(answer)
            if generation is None:
                return
            # From here only the answer's bubble changes: the question box may hold the next question being
            # typed, and a source opened meanwhile stays open.
            unchanged = (gr.skip(), gr.skip(), gr.skip(), gr.skip())
            kept: list[str] = []
            for sentence in generation:
                kept.append(sentence)
                yield [*asked, {"role": "assistant", "content": reply_html(answer, " ".join(kept))}], *unchanged
            result = generation.result
            if result is not None and result.text is None:  # nothing passed, or the LLM failed: say so
                yield [*asked, {"role": "assistant", "content": reply_html(answer, note=result.note)}], *unchanged

        def open_source(index: int | None, cited: list[dict]) -> str:
            if index is None or not 0 <= index < len(cited):
                return ""
            c = cited[index]
            span = c.get("span")
            return article_html(tanya, c["doc_id"], c["start"], c["end"], tuple(span) if span else None)

        outputs = [chatbot, question, citations, sources, article]
        asked = [question, chatbot, since, until, publishers]
        # One event for the Ask button and Enter, so that a question sent either way while the previous answer
        # is still on its way runs after it (Gradio's default for a click, "once", dropped it silently: a
        # follow-up typed quickly was lost; two events would have run side by side). An example question
        # clicked meanwhile is its own event and still runs beside it.
        gr.on([send.click, question.submit], respond, asked, outputs, trigger_mode="always_last")
        def ask_example(sample: list[str], *rest: Any) -> Iterator[tuple]:
            yield from respond(sample[0], *rest)  # a generator function, so Gradio streams it like respond

        examples.click(ask_example, [examples, *asked[1:]], outputs, trigger_mode="always_last")
        sources.change(open_source, [sources, citations], article).then(None, js=SCROLL_TO_CITED)

        def listed(since: str | None, until: str | None, chosen_publishers: list[str] | None,
                   order: str) -> tuple[list[list[object]], str]:
            try:
                return documents_table(tanya, since, until, chosen_publishers, order), ""
            except InputError as exc:  # a date that is not one
                return documents_table(tanya, order=order), f"⚠ {html.escape(str(exc))}"

        def refreshed() -> tuple[list[list[object]], gr.Dropdown, gr.Dropdown, gr.Dropdown]:
            """After a change to the documents: all of them listed again, and the publishers anew."""
            choices = publisher_choices(tanya)
            return (documents_table(tanya), gr.Dropdown(choices=document_choices(tanya), value=None),
                    gr.Dropdown(choices=choices), gr.Dropdown(choices=choices))

        # Gradio shows the indexing progress bar (tqdm) through this default argument.
        def add_files(files: list[str] | None, token: str | None = None,
                      progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:  # noqa: B008
            if not files:
                return "", *refreshed(), None
            if not may_write(token):
                return refused, *refreshed(), None
            try:
                docs = read_paths([Path(f) for f in files])  # all validated before anything is written
                report = tanya.add(docs, progress=True)
            except (InputError, IndexBusy, StoreUnavailable) as exc:
                return f"⚠ {html.escape(str(exc))}", *refreshed(), None
            names = ", ".join(Path(f).name for f in files)
            return f"✓ {html.escape(names)}: {html.escape(report.summary())}", *refreshed(), None

        def delete_document(doc_id: str | None, token: str | None = None) -> tuple:
            if not doc_id:
                return "", *refreshed(), ""
            if not may_write(token):
                return refused, *refreshed(), ""
            try:
                deleted = tanya.delete(doc_id)
            except (IndexBusy, StoreUnavailable) as exc:
                return f"⚠ {html.escape(str(exc))}", *refreshed(), ""
            if not deleted:  # e.g. deleted meanwhile through the API or by another process
                return f"⚠ {html.escape(doc_id)}: no longer in the index", *refreshed(), ""
            return f"✓ {html.escape(doc_id)}", *refreshed(), ""

        listing = [table, chosen, publishers, doc_publishers]
        add.click(add_files, [upload, token], [status, *listing, upload])
        delete.click(delete_document, [chosen, token], [status, *listing, document_view])
        chosen.change(lambda doc_id: whole_article_html(tanya, doc_id), chosen, document_view)
        show.click(listed, [doc_since, doc_until, doc_publishers, order], [table, status])
        order.change(listed, [doc_since, doc_until, doc_publishers, order], [table, status])
        # The documents change under the page (the API, another process): list them afresh whenever the page
        # opens and whenever the Documents tab is shown, rather than as they were at start-up.
        demo.load(refreshed, None, listing, api_visibility="private")
        docs_tab.select(refreshed, None, listing, api_visibility="private")
    return demo


class GradioClientErrors:
    """Gradio's own routes (``/gradio_api/...``, ``/config``, ...) answer some malformed requests with a 500
    or fail after their response has started (found by schemathesis over Gradio's OpenAPI, tests/
    test_hostile_input.py): a form field that is not a file in an upload, a call missing its arguments
    (TypeError), an unknown endpoint name (KeyError, FnIndexInferError), an unknown event id whose event
    stream raises a 404 after sending "200 OK". This wrapper holds each response's start until its first
    body bytes, so a failure before them becomes a 4xx with a reason (the exception's own status when it
    carries one), logged in one line; a stream that fails later is closed cleanly. Our own routes
    (``/api``, ``/healthz``) answer their errors themselves and pass through untouched."""

    OWN_ROUTES = ("/api/", "/healthz", "/openapi.json", "/docs")

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.OWN_ROUTES) or scope["path"] == "/api":
            await self.app(scope, receive, send)
            return
        held: dict | None = None  # the response start, forwarded with the first body bytes
        forwarded = ended = failed = False

        async def holding_start(message: dict) -> None:
            nonlocal held, forwarded, ended, failed
            if message["type"] == "http.response.start":
                held = message
                return
            if failed or ended:
                return
            if not forwarded:
                if held is not None and held["status"] >= 500:
                    failed = True  # Gradio's own 500: answered below instead
                    return
                if message["type"] == "http.response.body" and not message.get("body"):
                    return  # no bytes yet (a stream that ends empty before its exception): keep holding
                if held is not None:
                    await send(held)
                forwarded = True
            await send(message)
            ended = message["type"] == "http.response.body" and not message.get("more_body", False)

        error: Exception | None = None
        try:
            await self.app(scope, receive, holding_start)
        except Exception as exc:  # Gradio's failure on a client's request: answered below, logged in one line
            error = exc
        if error is None and not failed:
            if not forwarded and held is not None:  # an empty response
                await send(held)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        log.warning("a malformed request to %s was refused: %s", scope["path"],
                    f"{type(error).__name__}: {error}" if error else "the web app answered 500")
        if forwarded:  # a stream that failed midway: its status is sent, so end it
            if not ended:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        status, reason = self.reason(scope["path"], error)
        await JSONResponse({"detail": reason}, status_code=status)(scope, receive, send)

    @staticmethod
    def reason(path: str, error: Exception | None) -> tuple[int, str]:
        status = getattr(error, "status_code", None)
        if status == 404:  # an event stream for an unknown (or already collected) event or session
            return 404, "no such event or session (its result may have been fetched already)"
        if isinstance(status, int) and 400 <= status < 500:
            return status, str(getattr(error, "detail", None) or "a malformed request")
        if path.endswith("/gradio_api/upload"):
            return 400, "a malformed upload: send files only, as multipart/form-data"
        if isinstance(error, KeyError) or type(error).__name__ == "FnIndexInferError":
            return 404, "no such endpoint of the web page (GET /gradio_api/openapi.json lists them)"
        return 400, "a malformed request to the web page's endpoint: check its arguments in /gradio_api/openapi.json"


class UploadNeedsToken:
    """With a token set, Gradio's upload route (``/gradio_api/upload``, which stores the files in its temp
    folder before any of our code runs) refuses a request without the token before reading a byte of it:
    ``Authorization: Bearer <token>``, or the cookie the page's token field sets."""

    def __init__(self, app: Any, api_token: str) -> None:
        self.app, self.api_token = app, api_token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith("/gradio_api/upload") \
                and not self.allowed(Headers(scope=scope)):
            await JSONResponse({"detail": "uploading needs the API token (TANYA_API_TOKEN): type it in the "
                                "token field first, or send Authorization: Bearer <token>"},
                               status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def allowed(self, headers: Headers) -> bool:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token_matches(given.strip(), self.api_token, from_header=True):
            return True
        cookies = SimpleCookie()
        with contextlib.suppress(CookieError):
            cookies.load(headers.get("cookie", ""))
        cookie = cookies.get(TOKEN_COOKIE)
        return cookie is not None and token_matches(unquote(cookie.value), self.api_token)


def mount(app: FastAPI, tanya: Tanya, api_token: str | None = None) -> FastAPI:
    """Serve the chat at ``/`` of the API app (the API routes, registered first, keep precedence)."""
    demo = build_ui(tanya, api_token)
    mounted = gr.mount_gradio_app(app, demo, path="/", css=CSS, i18n=I18N, footer_links=[], max_file_size=MAX_UPLOAD)
    # Gradio accepts a file path from a client only if it lies in its upload folder (where its upload route
    # puts files), but checks that only once the Blocks "has launched", which launch() sets and
    # mount_gradio_app does not: without this, any file the server can read could be sent as an input
    # (`{"path": "/etc/...", "meta": {"_type": "gradio.FileData"}}`), copied, indexed and read back.
    demo.has_launched = True

    app.add_middleware(GradioClientErrors)
    if api_token is not None:
        app.add_middleware(UploadNeedsToken, api_token=api_token)
    return mounted
