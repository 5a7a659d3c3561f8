"""The web chat (Gradio), mounted at ``/`` by ``tanya serve`` next to the API.

Answers carry ``[n]`` markers; the sources of the latest answer are listed under the chat, and opening
one shows the whole article with the cited sentence highlighted by its offsets from the index (never by
searching for the string) and scrolled into view. Article text, titles and questions are always
escaped: a document containing ``<script>`` shows those characters and runs nothing.
"""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr
from fastapi import FastAPI

from index.documents import Document, InputError, read_paths
from index.index import IndexBusy
from index.vectors import StoreUnavailable
from rag.answer import Answer
from rag.tanya import Tanya

CITED_ID = "tanya-cited"
MAX_UPLOAD = "50mb"  # per file; a document over 5M characters (index.documents) is refused with a reason
SCROLL_TO_CITED = f"() => document.getElementById('{CITED_ID}')?.scrollIntoView({{block: 'center'}})"

CSS = f"""
#tanya-chat .message {{ white-space: pre-wrap; }}
.tanya-article {{ max-height: 60vh; overflow-y: auto; line-height: 1.6; white-space: pre-wrap;
                 padding: 0.75rem 1rem; border: 1px solid var(--border-color-primary); border-radius: 8px; }}
#{CITED_ID} {{ background: #ffe58a; color: #111; padding: 0 2px; border-radius: 3px; }}
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
        "upload": "Add .txt, .md or .jsonl files"},
    id={"header": "## Tanya\nJawaban tentang artikel berita Anda, masing-masing dengan kalimat sumbernya.",
        "empty_chat": "Bertanyalah dalam bahasa Indonesia atau Inggris. Setiap jawaban mengutip artikel beserta "
                      "sumbernya; bila artikel tidak memuat jawabannya, Tanya akan mengatakannya.",
        "ask": "Tanya", "placeholder": "Tanyakan isi artikel (bahasa Indonesia atau Inggris)…",
        "sources": "Sumber", "open": "Buka sumber untuk membacanya di artikelnya", "chat_tab": "Obrolan",
        "docs_tab": "Dokumen", "examples": "Coba tanyakan", "document": "Dokumen", "delete": "Hapus",
        "add": "Tambahkan ke indeks", "upload": "Tambahkan berkas .txt, .md atau .jsonl"},
)


def source_label(n: int, title: str, sentence: str, date: str | None = None) -> str:
    when = f" ({date})" if date else ""
    return f"[{n}] {title[:80]}{when} — {sentence[:140]}"


def article_frame(doc: Document, body: str) -> str:
    """An article's title, id and date (escaped) above ``body`` (already-escaped HTML)."""
    date = f" · {html.escape(doc.date)}" if doc.date else ""
    return (f'<div class="tanya-article"><h3>{html.escape(doc.title)}</h3><small>{html.escape(doc.doc_id)}{date}'
            f"</small>\n\n{body}</div>")


def article_html(tanya: Tanya, doc_id: str, start: int, end: int) -> str:
    """The article, escaped, with text[start:end] wrapped in the highlight."""
    doc = tanya.document(doc_id)
    if doc is None:
        return "<p>(this document is no longer in the index)</p>"
    text = doc.text
    return article_frame(doc, f'{html.escape(text[:start])}<mark id="{CITED_ID}">{html.escape(text[start:end])}'
                              f"</mark>{html.escape(text[end:])}")


def message_text(message: dict) -> str:
    """A chat message's text: Gradio hands messages back with content as a string or as a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def example_questions(tanya: Tanya, limit: int = 3) -> list[str]:
    """A few questions about the corpus's own articles, for an empty chat."""
    def short(title: str, limit: int = 70) -> str:
        return title if len(title) <= limit else title[:limit].rsplit(" ", 1)[0].rstrip(" ,.…-–") + "…"

    return [f"Apa isi berita \u201c{short(d.title.rstrip(' .…'))}\u201d?" for d in tanya.documents()[:limit]]


def documents_table(tanya: Tanya) -> list[list[object]]:
    return [[d.doc_id, d.title, d.date or "", d.sentences] for d in tanya.documents()]


def document_choices(tanya: Tanya) -> list[tuple[str, str]]:
    return [(f"{d.title[:90]} ({d.doc_id})", d.doc_id) for d in tanya.documents()]


def whole_article_html(tanya: Tanya, doc_id: str | None) -> str:
    doc = tanya.document(doc_id) if doc_id else None
    return article_frame(doc, html.escape(doc.text)) if doc else ""


def build_ui(tanya: Tanya) -> gr.Blocks:
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
            sources = gr.Radio(choices=[], label=I18N("sources"), info=I18N("open"), elem_id="tanya-sources",
                               type="index", visible=False)
            article = gr.HTML(elem_id="tanya-article")
        with gr.Tab(I18N("docs_tab"), elem_id="tanya-docs-tab"):
            table = gr.Dataframe(value=lambda: documents_table(tanya), headers=["id", "title", "date", "sentences"],
                                 interactive=False, elem_id="tanya-doc-table", wrap=True)
            with gr.Row():
                chosen = gr.Dropdown(choices=document_choices(tanya), label=I18N("document"), scale=4,
                                     elem_id="tanya-doc-choice")
                delete = gr.Button(I18N("delete"), variant="stop", scale=1, elem_id="tanya-delete")
            upload = gr.File(file_count="multiple", file_types=[".txt", ".md", ".jsonl"], label=I18N("upload"),
                             elem_id="tanya-upload")
            add = gr.Button(I18N("add"), variant="primary", elem_id="tanya-add")
            status = gr.Markdown(elem_id="tanya-doc-status")
            document_view = gr.HTML(elem_id="tanya-doc-view")

        def respond(text: str, messages: list[dict]) -> tuple[list[dict], str, list[dict], gr.Radio, str]:
            history = [message_text(m) for m in messages if m.get("role") == "user"]
            try:
                answer: Answer = tanya.ask(text, history=history)
            except (InputError, StoreUnavailable) as exc:  # StoreUnavailable: e.g. the Chroma server is down
                messages = [*messages, {"role": "user", "content": text}, {"role": "assistant", "content": f"⚠ {exc}"}]
                return messages, "", [], gr.Radio(choices=[], visible=False), ""
            cited = [c.__dict__ for c in answer.citations]
            choices = [source_label(c["n"], c["title"], c["sentence"], c.get("date")) for c in cited]
            reply = answer.answer + "".join(f"\n{label}" for label in ["", *choices] if cited)
            messages = [*messages, {"role": "user", "content": text}, {"role": "assistant", "content": reply}]
            return messages, "", cited, gr.Radio(choices=choices, value=None, visible=bool(choices)), ""

        def open_source(index: int | None, cited: list[dict]) -> str:
            if index is None or not 0 <= index < len(cited):
                return ""
            c = cited[index]
            return article_html(tanya, c["doc_id"], c["start"], c["end"])

        outputs = [chatbot, question, citations, sources, article]
        for trigger in (send.click, question.submit):
            trigger(respond, [question, chatbot], outputs)
        examples.click(lambda sample, messages: respond(sample[0], messages), [examples, chatbot], outputs)
        sources.change(open_source, [sources, citations], article).then(None, js=SCROLL_TO_CITED)

        def refreshed() -> tuple[list[list[object]], gr.Dropdown]:
            return documents_table(tanya), gr.Dropdown(choices=document_choices(tanya), value=None)

        # Gradio shows the indexing progress bar (tqdm) through this default argument.
        def add_files(files: list[str] | None, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple:  # noqa: B008
            if not files:
                return "", *refreshed(), None
            try:
                docs = read_paths([Path(f) for f in files])  # all validated before anything is written
                report = tanya.index.add(docs, progress=True)
            except (InputError, IndexBusy, StoreUnavailable) as exc:
                return f"⚠ {html.escape(str(exc))}", *refreshed(), None
            names = ", ".join(Path(f).name for f in files)
            return f"✓ {html.escape(names)}: {html.escape(report.summary())}", *refreshed(), None

        def delete_document(doc_id: str | None) -> tuple:
            if not doc_id:
                return "", *refreshed(), ""
            try:
                deleted = tanya.delete(doc_id)
            except (IndexBusy, StoreUnavailable) as exc:
                return f"⚠ {html.escape(str(exc))}", *refreshed(), ""
            return (f"✓ {html.escape(doc_id)}" if deleted else ""), *refreshed(), ""

        add.click(add_files, upload, [status, table, chosen, upload])
        delete.click(delete_document, chosen, [status, table, chosen, document_view])
        chosen.change(lambda doc_id: whole_article_html(tanya, doc_id), chosen, document_view)
    return demo


def mount(app: FastAPI, tanya: Tanya) -> FastAPI:
    """Serve the chat at ``/`` of the API app (the API routes, registered first, keep precedence)."""
    return gr.mount_gradio_app(app, build_ui(tanya), path="/", css=CSS, i18n=I18N, footer_links=[],
                               max_file_size=MAX_UPLOAD)
