"""The web chat (Gradio), mounted at ``/`` by ``tanya serve`` next to the API.

Answers carry ``[n]`` markers; the sources of the latest answer are listed under the chat, and opening
one shows the whole article with the cited sentence highlighted by its offsets from the index (never by
searching for the string) and scrolled into view. Article text, titles and questions are always
escaped: a document containing ``<script>`` shows those characters and runs nothing.
"""

from __future__ import annotations

import html

import gradio as gr
from fastapi import FastAPI

from index.documents import InputError
from rag.answer import Answer
from rag.tanya import Tanya

CITED_ID = "tanya-cited"
SCROLL_TO_CITED = f"() => document.getElementById('{CITED_ID}')?.scrollIntoView({{block: 'center'}})"

CSS = f"""
.tanya-article {{ max-height: 60vh; overflow-y: auto; line-height: 1.6; white-space: pre-wrap;
                 padding: 0.75rem 1rem; border: 1px solid var(--border-color-primary); border-radius: 8px; }}
#{CITED_ID} {{ background: #ffe58a; color: #111; padding: 0 2px; border-radius: 3px; }}
.tanya-article h3 {{ margin-top: 0; white-space: normal; }}
"""

I18N = gr.I18n(
    en={"ask": "Ask", "placeholder": "Ask about the articles (Indonesian or English)…", "sources": "Sources",
        "open": "Open a source to read it in its article", "article": "Article"},
    id={"ask": "Tanya", "placeholder": "Tanyakan isi artikel (bahasa Indonesia atau Inggris)…",
        "sources": "Sumber", "open": "Buka sumber untuk membacanya di artikelnya", "article": "Artikel"},
)


def source_label(n: int, title: str, sentence: str) -> str:
    return f"[{n}] {title[:80]} — {sentence[:140]}"


def article_html(tanya: Tanya, doc_id: str, start: int, end: int) -> str:
    """The article, escaped, with text[start:end] wrapped in the highlight."""
    doc = tanya.document(doc_id)
    if doc is None:
        return "<p>(this document is no longer in the index)</p>"
    text = doc.text
    date = f" · {html.escape(doc.date)}" if doc.date else ""
    return (f'<div class="tanya-article"><h3>{html.escape(doc.title)}</h3><small>{html.escape(doc_id)}{date}'
            f"</small>\n\n{html.escape(text[:start])}<mark id=\"{CITED_ID}\">{html.escape(text[start:end])}</mark>"
            f"{html.escape(text[end:])}</div>")


def message_text(message: dict) -> str:
    """A chat message's text: Gradio hands messages back with content as a string or as a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def build_ui(tanya: Tanya) -> gr.Blocks:
    with gr.Blocks(title="Tanya") as demo:
        citations = gr.State([])  # the latest answer's citations, as dicts
        gr.Markdown("## Tanya")
        chatbot = gr.Chatbot(label="Tanya", render_markdown=False, height=420, elem_id="tanya-chat")
        with gr.Row():
            question = gr.Textbox(show_label=False, placeholder=I18N("placeholder"), scale=5, max_length=2000,
                                  elem_id="tanya-question", submit_btn=False)
            send = gr.Button(I18N("ask"), variant="primary", scale=1, elem_id="tanya-send")
        sources = gr.Radio(choices=[], label=I18N("sources"), info=I18N("open"), elem_id="tanya-sources",
                           type="index")
        article = gr.HTML(elem_id="tanya-article")

        def respond(text: str, messages: list[dict]) -> tuple[list[dict], str, list[dict], gr.Radio, str]:
            history = [message_text(m) for m in messages if m.get("role") == "user"]
            try:
                answer: Answer = tanya.ask(text, history=history)
            except InputError as exc:
                return messages, text, [], gr.Radio(choices=[]), f"<p>{html.escape(str(exc))}</p>"
            cited = [c.__dict__ for c in answer.citations]
            reply = answer.answer
            messages = [*messages, {"role": "user", "content": text}, {"role": "assistant", "content": reply}]
            choices = [source_label(c["n"], c["title"], c["sentence"]) for c in cited]
            return messages, "", cited, gr.Radio(choices=choices, value=None), ""

        def open_source(index: int | None, cited: list[dict]) -> str:
            if index is None or not 0 <= index < len(cited):
                return ""
            c = cited[index]
            return article_html(tanya, c["doc_id"], c["start"], c["end"])

        for trigger in (send.click, question.submit):
            trigger(respond, [question, chatbot], [chatbot, question, citations, sources, article])
        sources.change(open_source, [sources, citations], article).then(None, js=SCROLL_TO_CITED)
    return demo


def mount(app: FastAPI, tanya: Tanya) -> FastAPI:
    """Serve the chat at ``/`` of the API app (the API routes, registered first, keep precedence)."""
    return gr.mount_gradio_app(app, build_ui(tanya), path="/", css=CSS, i18n=I18N, footer_links=[])
