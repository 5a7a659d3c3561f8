"""The HTTP API under ``/api`` (FastAPI; OpenAPI JSON at ``/openapi.json``, read at ``/docs``), for tools
that embed Tanya.

Same contracts as the CLI: ``POST /api/ask`` returns exactly the JSON of ``tanya ask --json``; bad
requests get a 4xx with a ``detail`` that says why; the store being unreachable is a 503; a traceback
never reaches the client. Write endpoints need ``Authorization: Bearer $TANYA_API_TOKEN`` when a token
is configured (``tanya serve`` insists on one when it binds a non-loopback address).
"""

from __future__ import annotations

import asyncio
import html
import logging
import secrets
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, BeforeValidator, Field

from index.documents import MAX_SOURCE_CHARS, Document, make_document
from index.errors import IndexBusy, InputError, StoreUnavailable
from index.filters import DocumentFilter
from index.html_pages import page_document
from rag.tanya import MAX_K, MAX_QUESTION_CHARS, Tanya

log = logging.getLogger("tanya.api")

MAX_HISTORY = 20
MAX_BODY_BYTES = 20 * 1024 * 1024  # a batch of documents; questions are far smaller
MAX_DOCUMENTS_PER_REQUEST = 1000
BODY_READ_TIMEOUT = 30.0  # seconds a request body may pause between two of its parts


class BodyReadTimeout:
    """A client that starts a body and then stalls (or sends a byte a minute) gets a 408 and the connection
    is closed, instead of holding it open for ever. Only the request body is timed: once it is whole, the
    app's wait for a disconnect (a streamed answer, Gradio's event streams) is left alone. (Headers are read
    by uvicorn, before any app code.)"""

    def __init__(self, app: Any, timeout: float = BODY_READ_TIMEOUT) -> None:
        self.app, self.timeout = app, timeout

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stalled = started = body_read = False

        async def timed_receive() -> dict:
            nonlocal stalled, body_read
            if body_read or started:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                stalled = True
                return {"type": "http.disconnect"}  # the app stops reading, as for a client gone
            body_read = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if stalled and not started:
                return  # the 408 below answers instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not stalled:
                raise
        if stalled and not started:
            await JSONResponse({"detail": f"the request body stalled for {self.timeout:g} s"}, status_code=408,
                               headers={"Connection": "close"})(scope, receive, send)


# A question's length is checked by rag.tanya.check_question, not by the schema: a 400 naming the question
# (or the history item) and its length, whatever the length (pydantic's check made it a 422 above twice the
# limit). The body limit (20 MB) bounds what is read.
QUESTION = f"at most {MAX_QUESTION_CHARS:,} characters once stripped (else a 400)"


def whole_number(value: object) -> object:
    """`true` or `"3"` are not a number of citations; 3.0 is (JSON Schema's "integer" includes it)."""
    if isinstance(value, bool | str):
        raise ValueError("must be a whole number, not a string or a boolean")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(whole_number)]


class FilterFields(BaseModel):
    """Restrict to articles by publication date and publisher (index/filters.py); a bad date is a 400."""

    since: str | None = Field(default=None, max_length=100, description="only articles published on or after "
                              "this date (YYYY-MM-DD, YYYY-MM or YYYY); undated articles are left out")
    until: str | None = Field(default=None, max_length=100, description="only articles published on or before it")
    source: str | list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, max_length=200, description="only articles of this publisher (or any of these), any case")

    def document_filter(self) -> DocumentFilter | None:
        """Parsed once (a bad value: InputError, answered 400 with the reason)."""
        return DocumentFilter.parse(self.since, self.until, self.source)


class AskRequest(FilterFields):
    question: str = Field(description=f"the question (Indonesian or English), {QUESTION}")
    history: list[str] = Field(
        default_factory=list, max_length=MAX_HISTORY, description="earlier questions of the conversation")
    k: WholeNumber = Field(default=3, ge=1, le=10, description="at most this many cited sentences")
    generate: bool = Field(default=True, description="when the server has an LLM (`tanya serve --llm-url`), add "
                           "its answer as `generated`, each sentence checked against the citations")


class RetrieveRequest(FilterFields):
    query: str = Field(description=QUESTION)
    k: WholeNumber = Field(default=10, ge=1, le=MAX_K)


class DocumentIn(BaseModel):
    id: str = Field(min_length=1, max_length=200)
    text: str | None = Field(default=None, description="the document's text (give this or html)")
    html: str | None = Field(default=None, description="a saved news page instead of text: its article text is "
                             "indexed, and its title, date, publisher and URL are used where not given here")
    title: str | None = None
    date: str | None = Field(default=None, description="ISO 8601 (2016-03-14), or as news archives write it "
                             "(14/03/2016, 14 Maret 2016): stored as ISO; anything else is a 400")
    source: str | None = Field(default=None, description=f"the publisher, at most {MAX_SOURCE_CHARS} characters "
                               "(else a 400)")
    url: str | None = None

    def document(self, where: str) -> Document:
        if (self.text is None) == (self.html is None):
            raise InputError(f"{where}: give either 'text' or 'html'")
        if self.html is not None:
            return page_document(self.html, self.id, where, self.title, self.date, self.source, self.url)
        return make_document(self.id, self.text, self.title, self.date, self.source, self.url, where=where)


class DocumentsIn(BaseModel):
    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_DOCUMENTS_PER_REQUEST)


class Problem(BaseModel):
    """Every error response: why the request failed (never a traceback)."""
    detail: str


_REASONS = {400: "a bad question or document", 401: "the write endpoints need the API token",
            404: "no document with that id", 409: "the index is empty, or another process is writing",
            413: f"request body over {MAX_BODY_BYTES // 2**20} MB", 422: "a malformed request",
            503: "the vector store is unreachable"}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI declaration of the error responses an endpoint can give (all of them a ``Problem``)."""
    return {code: {"model": Problem, "description": _REASONS[code]} for code in codes}


def token_matches(given: str, expected: str, *, from_header: bool = False) -> bool:
    """Constant-time comparison as bytes: ``secrets.compare_digest`` refuses str holding non-ASCII
    characters (a TypeError: ``Bearer ü`` was a 500). A header value arrives decoded as Latin-1 (what
    Starlette does), so its bytes are recovered that way; anything else (a form field) is UTF-8."""
    try:
        raw = given.encode("latin-1") if from_header else given.encode("utf-8", "surrogatepass")
    except UnicodeEncodeError:
        return False
    return secrets.compare_digest(raw, expected.encode("utf-8", "surrogatepass"))


def docs_page(spec: dict[str, Any]) -> str:
    """A self-contained reading of the OpenAPI spec: Swagger UI loads its JS and CSS from a CDN (a blank
    page offline), and no installed package carries them."""
    rows = []
    for path, operations in spec.get("paths", {}).items():
        for method, op in operations.items():
            codes = ", ".join(str(code) for code in op.get("responses", {}))
            about = op.get("description") or op.get("summary") or ""
            rows.append(f"<tr><td><code>{html.escape(method.upper())}</code></td><td><code>{html.escape(path)}"
                        f"</code></td><td>{html.escape(about)}</td><td>{html.escape(codes)}</td></tr>")
    title = html.escape(f"{spec.get('info', {}).get('title', 'API')} API")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>body{{font-family:"
            "sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}td,th{text-align:left;padding:.3rem .6rem;"
            "vertical-align:top;border-bottom:1px solid #ddd}</style></head><body>"
            f"<h1>{title}</h1><p>{html.escape(spec.get('info', {}).get('description', ''))}</p>"
            "<p>The full OpenAPI description (request and response schemas) is at <a href='/openapi.json'>"
            "/openapi.json</a>; the README's HTTP API section has examples.</p>"
            "<table><tr><th>method</th><th>path</th><th>what</th><th>responses</th></tr>"
            f"{''.join(rows)}</table></body></html>")


def create_app(tanya: Tanya, api_token: str | None = None) -> FastAPI:
    # docs_url/redoc_url off: both pages load their assets from a CDN; /docs is served below instead.
    app = FastAPI(title="Tanya", version="1", description="Ask Indonesian news articles; answers cite their "
                  "exact source sentences (text[start:end] == sentence).", docs_url=None, redoc_url=None)

    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        if api_token is None:
            return
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token_matches(given.strip(), api_token, from_header=True):
            raise HTTPException(401, "this endpoint needs Authorization: Bearer <TANYA_API_TOKEN>")

    app.add_middleware(BodyReadTimeout)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(docs_page(app.openapi()))

    # Bodies over the limit: a declared Content-Length is refused here before anything is read; a chunked
    # body (no Content-Length) is counted as it arrives by the routes' `max_body_size`.
    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES // 2**20} MB"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Our own wording, without echoing the input (FastAPI's default echoes it, and cannot even encode
        # a lone surrogate: that became a 500).
        reasons = [f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg', 'invalid')}"
                   for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(reasons) or "invalid request"}, status_code=422)

    @app.exception_handler(InputError)
    async def input_error(_: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(IndexBusy)
    async def busy(_: Request, exc: IndexBusy) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(StoreUnavailable)
    async def unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")  # the traceback stays in the server log
        return JSONResponse({"detail": "internal error (see the server log)"}, status_code=500)

    @app.get("/healthz", tags=["server"])
    def healthz() -> dict:
        documents, sentences, chunks = tanya.counts()
        return {"status": "ok", "documents": documents, "sentences": sentences, "chunks": chunks}

    @app.post("/api/ask", tags=["answers"], responses=errors(400, 409, 413, 422, 503), max_body_size=MAX_BODY_BYTES)
    def ask(body: AskRequest) -> dict:
        """The answer with its citations: the same JSON as ``tanya ask --json``."""
        if tanya.is_empty():
            raise HTTPException(409, "the index is empty: add documents first")
        return tanya.ask(body.question, history=body.history, max_citations=body.k, generate=body.generate,
                         doc_filter=body.document_filter()).to_json()

    @app.post("/api/retrieve", tags=["answers"], responses=errors(400, 413, 422, 503), max_body_size=MAX_BODY_BYTES)
    def retrieve(body: RetrieveRequest) -> dict:
        """Hybrid retrieval only: ranked chunks with exact offsets and their fused, dense and BM25 scores."""
        with tanya.snapshot():  # the titles of the very documents retrieved
            doc_filter = body.document_filter()
            hits = tanya.retrieve(body.query, k=body.k, doc_filter=doc_filter)
            titles = tanya.titles({h.doc_id for h in hits}) if hits else {}
            matching = tanya.matching_documents(doc_filter=doc_filter)
        return {"query": body.query, "results": [{**asdict(h), "title": titles[h.doc_id][0]} for h in hits],
                "filter": matching}

    @app.get("/api/documents", tags=["documents"])
    def documents() -> dict:
        return {"documents": [asdict(d) for d in tanya.documents()]}

    @app.get("/api/documents/{doc_id}", tags=["documents"], responses=errors(404, 422))
    def document(doc_id: str) -> dict:
        """The whole text and every sentence's offsets (for highlighting a citation)."""
        with tanya.snapshot():  # the text and its offsets from one committed state
            doc = tanya.document(doc_id)
            if doc is None:
                raise HTTPException(404, f"no document with id {doc_id!r}")
            sentences = [{"index": s.idx, "start": s.start, "end": s.end, "chunk": s.chunk}
                         for s in tanya.sentences(doc_id)]
        return {"doc_id": doc.doc_id, "title": doc.title, "date": doc.date, "date_inferred": doc.date_inferred,
                "source": doc.source, "url": doc.url, "text": doc.text, "sentences": sentences}

    @app.post("/api/documents", tags=["documents"], dependencies=[Depends(require_token)],
              responses=errors(400, 401, 409, 413, 422, 503), max_body_size=MAX_BODY_BYTES)
    def add_documents(body: DocumentsIn) -> dict:
        """Add documents, or replace those whose id exists (unchanged ones are skipped)."""
        docs = [d.document(f"documents[{i}]") for i, d in enumerate(body.documents)]  # all, before any write
        report = tanya.add(docs)  # waits while another upload of this server is written
        return {"added": report.added, "updated": report.updated, "unchanged": report.unchanged,
                "sentences": report.sentences, "chunks": report.chunks, "seconds": round(report.seconds, 3)}

    @app.delete("/api/documents/{doc_id}", tags=["documents"], dependencies=[Depends(require_token)],
                responses=errors(401, 404, 409, 422, 503))
    def delete_document(doc_id: str) -> dict:
        deleted = tanya.delete(doc_id)
        if not deleted:
            raise HTTPException(404, f"no document with id {doc_id!r}")
        return {"deleted": doc_id}

    return app
