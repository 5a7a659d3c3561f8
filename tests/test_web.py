"""The web chat in a real browser: Playwright driving Debian's /usr/bin/chromium against a real
`tanya serve`. Screenshots go to test-artifacts/ (kept by CI as evidence, never compared)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.helpers import KIRBY_DOC, REPO, THOMAS_DOC, http, served_over_stoppable_chroma

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"

@pytest.fixture(scope="module")
def server(seed_server: str) -> str:
    return seed_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("these tests need Debian's chromium at /usr/bin/chromium: `make test` installs it")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(server + "/")
    page.wait_for_selector("#tanya-question textarea", timeout=60_000)
    yield page
    page.close()


def ask(page: Page, question: str) -> None:
    """Ask and wait for the answer (the question shows in the chat together with it)."""
    page.fill("#tanya-question textarea", question)
    page.click("#tanya-send")
    page.wait_for_function("q => document.querySelector('#tanya-chat').innerText.includes(q)", arg=question,
                           timeout=60_000)


def test_answer_sources_and_highlight_by_offsets(page: Page, server: str) -> None:
    ask(page, "Siapa juru bicara Central Command AS?")
    page.wait_for_selector("#tanya-sources label", timeout=60_000)
    assert "[1]" in page.inner_text("#tanya-chat")
    page.click("#tanya-sources label >> nth=0")
    page.wait_for_selector("#tanya-cited", timeout=30_000)
    # The highlight is exactly text[start:end] of the cited document, as the API reports it.
    _, answer = http("POST", f"{server}/api/ask", {"question": "Siapa juru bicara Central Command AS?"})
    first = answer["citations"][0]
    _, doc = http("GET", f"{server}/api/documents/{first['doc_id']}")
    assert page.inner_text("#tanya-cited") == doc["text"][first["start"] : first["end"]]
    assert page.evaluate("() => { const r = document.getElementById('tanya-cited').getBoundingClientRect();"
                         " return r.top >= 0 && r.bottom <= window.innerHeight; }")  # scrolled into view
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-answer.png"), full_page=True)


def test_short_answer_in_bold_each_sentence_once_and_marked_in_the_article(page: Page, server: str) -> None:
    question = "Berapa orang tewas dalam serangan terhadap konvoi bantuan?"
    _, answer = http("POST", f"{server}/api/ask", {"question": question})
    short, first = answer["short_answer"], answer["citations"][0]
    ask(page, question)
    page.wait_for_selector("#tanya-sources label", timeout=60_000)
    bubble = page.locator("#tanya-chat .message").last
    assert bubble.locator("strong").first.inner_text() == short["text"]
    assert bubble.inner_text().strip().startswith(short["text"])
    chat = page.inner_text("#tanya-chat")
    for c in answer["citations"]:
        assert chat.count(c["sentence"]) == 1  # once, with its [n]; the sources list names the article
        assert c["sentence"] not in page.inner_text("#tanya-sources")
    page.click("#tanya-sources label >> nth=0")
    page.wait_for_selector("#tanya-short-answer", timeout=30_000)
    _, doc = http("GET", f"{server}/api/documents/{first['doc_id']}")
    assert page.inner_text("#tanya-cited") == doc["text"][first["start"] : first["end"]]
    assert page.inner_text("#tanya-cited #tanya-short-answer") == doc["text"][short["start"] : short["end"]]


def test_a_follow_up_uses_the_conversation(page: Page) -> None:
    ask(page, "Siapa juru bicara Central Command AS?")
    ask(page, "Apa pangkatnya?")
    assert page.inner_text("#tanya-chat").count("Kolonel") >= 2


def test_refusal_reads_as_a_refusal(page: Page) -> None:
    ask(page, "Siapa pemenang Piala Dunia 2014 di Brasil?")
    page.wait_for_function("() => document.querySelector('#tanya-chat').innerText.includes('Maaf')",
                           timeout=60_000)
    assert page.locator("#tanya-sources label").count() == 0


def test_markup_in_an_article_is_shown_as_text_and_never_runs(page: Page, server: str) -> None:
    hostile = ("Gubernur Zulkarnaen membuka pameran batik di Pekalongan. <script>window.__xss = 1</script>"
               " <img src=x onerror=\"window.__xss = 2\"> Pameran berlangsung tiga hari.")
    status, _ = http("POST", f"{server}/api/documents", {"documents": [{"id": "xss", "text": hostile,
                                                                         "title": "<b>Batik</b> <script>1</script>"}]})
    assert status == 200
    try:
        ask(page, "Siapa yang membuka pameran batik di Pekalongan?")
        page.wait_for_selector("#tanya-sources label", timeout=60_000)
        page.click("#tanya-sources label >> nth=0")
        page.wait_for_selector("#tanya-cited", timeout=30_000)
        shown = page.inner_text("#tanya-article")
        assert "<script>window.__xss = 1</script>" in shown and "<b>Batik</b>" in shown
        assert page.evaluate("() => window.__xss") is None
        assert page.locator("#tanya-article script, #tanya-article img, #tanya-article b").count() == 0
        assert page.locator("#tanya-sources script, #tanya-sources b").count() == 0
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat-markup-as-text.png"), full_page=True)
    finally:
        http("DELETE", f"{server}/api/documents/xss")


@pytest.fixture
def beacon() -> Iterator[tuple[str, list[str]]]:
    """A web server that records every request: markup that makes the browser fetch anything is caught."""
    hits: list[str] = []

    class Record(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Record)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}", hits  # no dots: the sentence splitter keeps it whole
    server.shutdown()


def test_markup_in_the_chat_bubbles_is_shown_literally(page: Page, server: str,
                                                       beacon: tuple[str, list[str]]) -> None:
    """Gradio renders a chat message as sanitised HTML even with render_markdown=False: an image, a video, a
    phishing link or form from a document (or a question) were live, and fetched. Every text shows as typed."""
    url, hits = beacon
    sentence = (f"Bupati Sutrisno meresmikan jembatan gantung di Desa Karangrejo <img src={url}/beacon-img> "
                f"<a href={url}/phish>KLIK DI SINI untuk login ulang</a> <form><input placeholder='kata sandi'>"
                f"</form> <video src={url}/beacon-video></video> &lt;b&gt;tebal&lt;/b&gt; "
                "<script>window.__xss = 3</script> pada hari Senin")
    title = f"Jembatan <img src={url}/beacon-title> <b>baru</b>"
    status, _ = http("POST", f"{server}/api/documents", {"documents": [{"id": "markup-chat", "text": sentence + ".",
                                                                         "title": title}]})
    assert status == 200
    question = f"Siapa yang meresmikan jembatan gantung di Desa Karangrejo? <video src={url}/beacon-question>"
    try:
        ask(page, "Siapa yang meresmikan jembatan gantung di Desa Karangrejo?")
        page.wait_for_selector("#tanya-sources label", timeout=60_000)
        page.fill("#tanya-question textarea", question)
        page.click("#tanya-send")
        expect(page.locator("#tanya-chat")).to_contain_text(f"<video src={url}/beacon-question>", timeout=60_000)
        page.wait_for_timeout(1000)  # time for anything live to fetch its source
        shown = page.inner_text("#tanya-chat")
        for literal in (f"<img src={url}/beacon-img>", "KLIK DI SINI untuk login ulang</a>",
                        "<form><input placeholder='kata sandi'>", f"<video src={url}/beacon-video>",
                        "&lt;b&gt;tebal&lt;/b&gt;", "<script>window.__xss = 3</script>"):
            assert literal in shown, (literal, shown)
        # The title is named in the sources under the chat (the bubble holds the sentences only).
        assert f"<img src={url}/beacon-title> <b>baru</b>" in page.inner_text("#tanya-sources")
        assert page.locator("#tanya-sources img, #tanya-sources b").count() == 0
        live = "#tanya-chat .message img, #tanya-chat .message a, #tanya-chat .message form, " \
               "#tanya-chat .message input, #tanya-chat .message video, #tanya-chat .message b"
        assert page.locator(live).count() == 0
        assert page.evaluate("() => window.__xss") is None
        assert hits == [], hits
        # A follow-up still reads the earlier (escaped) questions as they were typed.
        ask(page, "Kapan?")
        assert "Senin" in page.inner_text("#tanya-chat").rsplit("Kapan?", 1)[1]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat-markup-literal.png"), full_page=True)
    finally:
        http("DELETE", f"{server}/api/documents/markup-chat")


def test_an_example_question_is_asked_on_click(page: Page) -> None:
    examples = page.locator("#tanya-examples button")
    expect(examples.first).to_contain_text("Apa isi berita", timeout=30_000)  # waits for Gradio to render it
    examples.first.click()
    page.wait_for_selector("#tanya-sources label", timeout=60_000)
    assert "[1]" in page.inner_text("#tanya-chat")


def open_documents_tab(page: Page) -> None:
    page.get_by_role("tab", name="Documents").click()
    page.wait_for_selector("#tanya-doc-table", timeout=30_000)


def upload(page: Page, path: Path) -> str:
    page.set_input_files("#tanya-upload input[type=file]", str(path))
    # (the stem: Gradio shows the name's stem and extension in two boxes, a newline apart in innerText)
    page.wait_for_function("n => document.querySelector('#tanya-upload').innerText.includes(n)", arg=path.stem,
                           timeout=30_000)
    page.click("#tanya-add")
    page.wait_for_function("n => { const s = document.querySelector('#tanya-doc-status').innerText;"
                           " return s.includes(n) && !s.includes('processing') && /[✓⚠]/.test(s); }",
                           arg=path.name, timeout=120_000)
    return page.inner_text("#tanya-doc-status")


def test_documents_upload_reject_and_delete(page: Page, tmp_path: Path) -> None:
    open_documents_tab(page)
    good = tmp_path / "banjir-semarang.txt"
    good.write_text("Banjir melanda Kota Semarang pada hari Rabu. Warga mengungsi ke Stadion Diponegoro.\n")
    status = upload(page, good)
    assert "1 added" in status, status
    page.wait_for_function("() => document.querySelector('#tanya-doc-table').innerText.includes('banjir-semarang')",
                           timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "documents.png"), full_page=True)

    empty = tmp_path / "kosong.txt"
    empty.write_text("   \n")
    status = upload(page, empty)
    assert "⚠" in status and "empty" in status, status
    assert "kosong" not in page.inner_text("#tanya-doc-table")
    assert "banjir-semarang" in page.inner_text("#tanya-doc-table")  # nothing already indexed was lost

    page.click("#tanya-doc-choice input")
    page.get_by_role("option", name="(banjir-semarang)").click()
    page.wait_for_function("() => document.querySelector('#tanya-doc-view').innerText.includes('Stadion')",
                           timeout=30_000)
    page.click("#tanya-delete")
    page.wait_for_function("() => !document.querySelector('#tanya-doc-table').innerText.includes('banjir-semarang')",
                           timeout=60_000)


def test_a_saved_news_page_is_uploaded_as_its_article(page: Page) -> None:
    """An .html page through the Documents tab: listed with the date the page gives, opened as its article's
    text only (no menu, most-read list, newsletter form or comments), then deleted."""
    from tests.test_html_pages import PAGES

    open_documents_tab(page)
    status = upload(page, PAGES / "gempa-cianjur.html")
    assert "1 added" in status, status
    page.wait_for_function("() => document.querySelector('#tanya-doc-table').innerText.includes('2023-11-21')",
                           timeout=30_000)
    page.click("#tanya-doc-choice input")
    page.get_by_role("option", name="(gempa-cianjur)").click()
    page.wait_for_function("() => document.querySelector('#tanya-doc-view').innerText.includes('kedalaman 11')",
                           timeout=30_000)
    shown = page.inner_text("#tanya-doc-view")
    assert "\u201cGuncangannya keras sekali" in shown and "Jos\u00e9" in shown
    for bit in ("Terpopuler", "Berlangganan", "Turut berduka", "Bagikan", "Kebijakan Privasi"):
        assert bit not in shown, bit
    page.click("#tanya-delete")
    page.wait_for_function("() => !document.querySelector('#tanya-doc-table').innerText.includes('gempa-cianjur')",
                           timeout=60_000)


def test_documents_added_elsewhere_can_be_opened_and_deleted_from_the_page(page: Page, server: str) -> None:
    """The dropdown was built once at start-up: a document added through the API after that (or by another
    process) could not be opened or deleted from the page. It is listed afresh when the tab is shown."""
    doc = {"id": "dari-api", "title": "Gempa di Cianjur", "text": "Gempa mengguncang Cianjur pada hari Senin."}
    assert http("POST", f"{server}/api/documents", {"documents": [doc]})[0] == 200  # after the page loaded
    try:
        open_documents_tab(page)
        expect(page.locator("#tanya-doc-table")).to_contain_text("dari-api", timeout=30_000)
        page.click("#tanya-doc-choice input")
        page.get_by_role("option", name="(dari-api)").click()
        expect(page.locator("#tanya-doc-view")).to_contain_text("mengguncang Cianjur", timeout=30_000)
        page.click("#tanya-delete")
        expect(page.locator("#tanya-doc-status")).to_contain_text("✓ dari-api", timeout=60_000)
        assert http("GET", f"{server}/api/documents/dari-api")[0] == 404
        # Deleted elsewhere while still listed: the page says so instead of nothing.
        assert http("POST", f"{server}/api/documents", {"documents": [doc]})[0] == 200
        page.get_by_role("tab", name="Chat").click()
        open_documents_tab(page)
        page.click("#tanya-doc-choice input")
        page.get_by_role("option", name="(dari-api)").click()
        expect(page.locator("#tanya-doc-view")).to_contain_text("mengguncang Cianjur", timeout=30_000)
        assert http("DELETE", f"{server}/api/documents/dari-api")[0] == 200
        page.click("#tanya-delete")
        expect(page.locator("#tanya-doc-status")).to_contain_text("no longer in the index", timeout=60_000)
    finally:
        http("DELETE", f"{server}/api/documents/dari-api")


TWO_PAPERS = [
    {"id": "koran-satu", "title": "Banjir Bekasi", "date": "2019-09-02", "source": "kompas.com",
     "text": "Banjir merendam 300 rumah di Bekasi pada Senin. Warga mengungsi ke masjid."},
    {"id": "koran-dua", "title": "Banjir Karawang", "date": "2019-10-05", "source": "tempo.co",
     "text": "Banjir merendam 120 rumah di Karawang pada Sabtu. Warga mengungsi ke balai desa."},
]


def test_the_chat_and_the_documents_tab_filter_by_date_and_publisher(page: Page, server: str) -> None:
    """The same filtered answer as the API's; a filter that allows nothing says so; the Documents tab lists
    the documents of a period, newest first."""
    question = "Berapa rumah yang terendam banjir?"
    assert http("POST", f"{server}/api/documents", {"documents": TWO_PAPERS})[0] == 200
    try:
        _, expected = http("POST", f"{server}/api/ask", {"question": question, "source": "tempo.co"})
        assert [c["doc_id"] for c in expected["citations"]] == ["koran-dua"]
        page.reload()  # the publishers are listed as the page loads
        page.wait_for_selector("#tanya-question textarea", timeout=60_000)
        page.get_by_text("Filter by date and publisher").click()
        page.click("#tanya-publishers input")
        page.get_by_role("option", name="tempo.co (1)").click()
        ask(page, question)
        page.wait_for_selector("#tanya-sources label", timeout=60_000)
        bubble = page.locator("#tanya-chat .message").last.inner_text()
        assert expected["answer"] in bubble and "(filter: penerbit tempo.co; 1 dokumen)" in bubble
        assert page.locator("#tanya-sources label").all_inner_texts() == ["[1] Banjir Karawang (2019-10-05)"]

        page.fill("#tanya-since textarea, #tanya-since input", "2030")
        ask(page, "Berapa rumah yang terendam banjir di Bekasi?")
        expect(page.locator("#tanya-chat .message").last).to_contain_text(
            "Tidak ada dokumen di korpus yang cocok dengan filter (terbit sejak 2030; penerbit tempo.co)",
            timeout=60_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat-filters.png"), full_page=True)

        open_documents_tab(page)
        page.click("#tanya-doc-order input")
        page.get_by_role("option", name="newest").click()
        listed = "() => document.querySelector('#tanya-doc-table').innerText"
        ids = ["koran-dua", "koran-satu", THOMAS_DOC, KIRBY_DOC]  # 2019-10-05, 2019-09-02, 2016-09-20, 2016-03-14
        page.wait_for_function(f"ids => {{ const t = ({listed})(); const at = ids.map(i => t.indexOf(i));"
                               " return at.every((p, n) => p >= 0 && (n === 0 || at[n - 1] < p)); }", arg=ids,
                               timeout=30_000)
        page.fill("#tanya-doc-since textarea, #tanya-doc-since input", "2019-09")
        page.fill("#tanya-doc-until textarea, #tanya-doc-until input", "2019-09-30")
        page.click("#tanya-doc-show")
        page.wait_for_function(f"() => !({listed})().includes('{KIRBY_DOC}')", timeout=30_000)
        shown = page.inner_text("#tanya-doc-table")
        assert "koran-satu" in shown and "kompas.com" in shown
        assert not any(i in shown for i in ("koran-dua", THOMAS_DOC, KIRBY_DOC))
        page.fill("#tanya-doc-since textarea, #tanya-doc-since input", "bulan lalu")
        page.click("#tanya-doc-show")
        expect(page.locator("#tanya-doc-status")).to_contain_text("is not a date", timeout=30_000)
    finally:
        for doc in TWO_PAPERS:
            http("DELETE", f"{server}/api/documents/{doc['id']}")


def test_the_api_docs_page_reads_offline(browser: Browser, server: str) -> None:
    """/docs was Swagger UI, whose JS and CSS come from a CDN: blank offline. Every request leaving the server
    is refused here, as it would be on an offline machine."""
    page = browser.new_page()
    outside: list[str] = []

    def offline(route: Route) -> None:
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    try:
        page.route("**/*", offline)
        page.goto(f"{server}/docs")
        expect(page.locator("body")).to_contain_text("POST", timeout=30_000)
        shown = page.inner_text("body")
        assert "/api/ask" in shown and "/api/documents/{doc_id}" in shown and "/openapi.json" in shown
        assert outside == []
        page.click("text=/openapi.json")
        expect(page.locator("body")).to_contain_text('"openapi"', timeout=30_000)
    finally:
        page.close()


def test_phone_width_needs_no_sideways_scrolling(browser: Browser, server: str) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        page.goto(server + "/")
        page.wait_for_selector("#tanya-question textarea", timeout=60_000)
        ask(page, "Berapa orang tewas dalam serangan terhadap konvoi bantuan?")
        page.wait_for_selector("#tanya-sources label", timeout=60_000)
        page.click("#tanya-sources label >> nth=0")
        page.wait_for_selector("#tanya-cited", timeout=30_000)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat-phone.png"), full_page=True)
    finally:
        page.close()


def test_the_chat_says_the_index_is_unavailable_while_chroma_is_down_then_recovers(
        browser: Browser, tmp_path: Path, model_dir: Path) -> None:
    with served_over_stoppable_chroma(tmp_path) as (url, chroma):
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(url + "/")
        page.wait_for_selector("#tanya-question textarea", timeout=60_000)
        chroma.stop()
        ask(page, "Siapa juru bicara Central Command AS?")
        expect(page.locator("#tanya-chat")).to_contain_text("the index is unavailable", timeout=60_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chroma-down.png"), full_page=True)
        chroma.start()  # back: answers again without a restart
        ask(page, "Siapa Ben Thomas?")
        expect(page.locator("#tanya-sources label").first).to_be_visible(timeout=60_000)
        page.close()


def test_with_a_token_the_page_uploads_only_after_the_token_is_typed(browser: Browser, tmp_path: Path,
                                                                      seed_home: Path) -> None:
    """Gradio's upload route stores a file as soon as it is chosen, before the Add button: with a token set
    it refuses the file until the token field holds the token (sent as a cookie, ui/web.py UploadNeedsToken)."""
    import shutil

    from tests.helpers import running_server

    home = tmp_path / "home"
    shutil.copytree(seed_home, home, ignore=shutil.ignore_patterns("index.lock"))
    good = tmp_path / "banjir-bertoken.txt"
    good.write_text("Banjir melanda Kota Semarang pada hari Rabu. Warga mengungsi ke Stadion Diponegoro.\n")
    with running_server(home, tmp_path / "serve.log", env={"TANYA_API_TOKEN": "rahasia-web"}) as url:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(url + "/")
        open_documents_tab(page)
        with page.expect_response(lambda r: "/gradio_api/upload" in r.url, timeout=30_000) as refused:
            page.set_input_files("#tanya-upload input[type=file]", str(good))
        assert refused.value.status == 401
        page.fill("#tanya-token input", "rahasia-web")
        page.press("#tanya-token input", "Tab")  # the field's change event sets the cookie
        with page.expect_response(lambda r: "/gradio_api/upload" in r.url, timeout=30_000) as accepted:
            status = upload(page, good)
        assert accepted.value.status == 200 and "1 added" in status, status
        page.close()
