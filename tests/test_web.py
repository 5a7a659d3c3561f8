"""The web chat in a real browser: Playwright driving Debian's /usr/bin/chromium against a real
`tanya serve`. Screenshots go to test-artifacts/ (kept by CI as evidence, never compared)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.helpers import REPO, http, served_over_stoppable_chroma

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"

@pytest.fixture(scope="module")
def server(seed_server: str) -> str:
    return seed_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("these tests need Debian's chromium at /usr/bin/chromium: `make setup` installs it")
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
    page.wait_for_function("n => document.querySelector('#tanya-upload').innerText.includes(n)", arg=path.name,
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
