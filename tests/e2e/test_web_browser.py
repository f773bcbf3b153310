"""The web page as a person uses it: Debian's Chromium, driven by Playwright, against a real `rag serve` on
127.0.0.1 with the real embedder and the bundled GGUF. Two stories, one server each, over one index:

1. ask, watch the draft stream, get the checked answer, open [1] and see the quote highlighted in its
   article; a follow-up; an abstention; a bad date range; Stop; upload, ask about it, delete it; a hostile
   article whose <script> and <img onerror> must stay text; the page at 360 px.
2. with RAG_API_KEY set, the page asks for the key, refuses a wrong one and works with the right one.

Chromium comes from apt (`make browser`); Playwright never downloads one. Without it the tests fail under
CI=true and skip elsewhere, saying how to install it. NEWSRAG_SCREENSHOT=path saves the README picture.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import CORPUS, ROOT
from tests.servers import rag_server

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = Path(os.environ.get("NEWSRAG_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
RAG = [sys.executable, "-m", "rag.cli.main"]
KEY = "browser-test-key-4711"
QUESTION = "What was decided about the NATO-Ukraine Council?"
FOLLOW_UP = "And when did the commission meet?"
UNANSWERABLE = "What is the population of Ukraine?"
COUNCIL_DOCS = {"001_d33884d0ecc97606", "000_ff6882ef16d64a7d"}
ANSWER_S = 600_000  # ms: the 135M model on a loaded 2-core CI box can take minutes
UI_S = 30_000
ARTICLES = re.compile(r"\d+ articles")  # the first story leaves its hostile article in the shared index

LOWMERE = b"""Harbour Town Opens Floating Library

LOWMERE, 2024-05-04 - The town of Lowmere opened a floating library on its harbour on Saturday, the mayor said.
The barge holds four thousand books and will moor at a different pier each week.
Volunteers from the rowing club built the shelves over the winter months.
"""
HOSTILE = b"""Quarry Gazette: the Zephyrine bridge reopens

The Zephyrine bridge reopened to walkers on Monday <script>window.__pwned='script';alert('script')</script> after repairs.
Engineers said <img src=x onerror="window.__pwned='img';alert('img')"> the Zephyrine bridge now carries twice the load.
"""


def need_browser() -> None:
    """Chromium and Playwright, or a clear failure (CI) or skip (elsewhere) saying how to get them."""
    problems = []
    if not CHROMIUM.exists():
        problems.append(f"{CHROMIUM} is missing: run `make browser` (as root: apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the playwright package is missing: run `make install` (it is a dev dependency)")
    if problems:
        message = "browser tests need Chromium and Playwright: " + "; ".join(problems)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    need_browser()
    home = tmp_path_factory.mktemp("web")
    index = home / "index"
    subprocess.run(
        [*RAG, "--index-dir", str(index), "index", str(CORPUS)],
        cwd=home,
        env=server_env(),
        check=True,
        capture_output=True,
        timeout=900,
    )
    return index


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


@contextmanager
def rag_serve(index: Path, **env: str) -> Iterator[str]:
    home = index.parent
    headers = {"Authorization": f"Bearer {env['RAG_API_KEY']}"} if "RAG_API_KEY" in env else None
    log = home / f"serve-{time.monotonic_ns()}.log"
    with rag_server(
        [*RAG, "--index-dir", str(index), "serve"], cwd=home, env=server_env(**env), log=log, headers=headers
    ) as base:
        yield base


@pytest.fixture(scope="module")
def browser(index_dir):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # launch() gives every run a fresh, temporary profile; each test opens its own context on top.
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Watch:
    """What a page did that a person would notice or a test must forbid: dialogs, script errors, requests."""

    def __init__(self, page):
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.asks: list[dict] = []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on(
            "console",
            lambda m: (
                self.errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None
            ),
        )
        page.on(
            "request",
            lambda r: (
                self.asks.append({**json.loads(r.post_data or "{}"), "_auth": r.headers.get("authorization")})
                if r.url.endswith("/v1/ask")
                else None
            ),
        )


def open_page(browser, base: str, **context):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light", **context)
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(base + "/")
    return page, watch


def record_drafts(page) -> None:
    # Every draft text the page shows, however briefly (a fast model may finish between two polls).
    page.evaluate(
        """() => {
        window.__drafts = [];
        new MutationObserver(() => {
            const d = document.querySelector('#conversation .draft');
            if (d) window.__drafts.push(d.textContent);
        }).observe(document.getElementById('conversation'), {childList: true, subtree: true, characterData: true});
    }"""
    )


def ask(page, question: str):
    """Type the question and press Enter (the keyboard path); returns the new turn's answer element."""
    turns = page.locator("#conversation .turn").count()
    page.locator("#question").fill(question)
    page.locator("#question").press("Enter")
    answer = page.locator("#conversation .turn").nth(turns).locator(".answer")
    answer.locator(":scope[aria-busy=false]").wait_for(timeout=ANSWER_S)
    return answer


def no_injection(page, watch: Watch) -> None:
    assert watch.dialogs == [], watch.dialogs
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.evaluate("() => document.querySelectorAll('img, iframe, object, embed').length") == 0
    assert page.evaluate("() => [...document.scripts].map(s => new URL(s.src).pathname)") == ["/static/js/main.js"]


def test_chat_cite_follow_up_abstain_upload_delete(browser, index_dir, tmp_path):
    from playwright.sync_api import expect

    # Drafting forced on: the bundled model's measured record makes generate mode quote (rag/models/drafting.py), and
    # this test is about the page showing a draft as it streams, which a model that drafts still does.
    with rag_serve(index_dir, RAG_GENERATION_MIN_SURVIVAL="0") as base:
        page, watch = open_page(browser, base)
        expect(page.locator("#status")).to_contain_text("5 articles", timeout=UI_S)
        record_drafts(page)

        # 1. Ask: the draft streams greyed, then the checked answer replaces it.
        answer = ask(page, QUESTION)
        drafts = [d for d in page.evaluate("() => window.__drafts") if d.strip()]
        assert drafts, "no streamed draft was shown"
        assert len(set(drafts)) > 1, "the draft did not grow as tokens arrived"
        expect(answer.locator(".draft")).to_have_count(0)
        expect(answer.locator(".answer-text")).to_contain_text("[1]")
        expect(answer.locator(".timing")).to_contain_text("total")
        expect(answer.locator(".sources li")).not_to_have_count(0)

        # 2. Click [1]: the article opens beside the chat with the quote highlighted and in view.
        answer.locator("a.cite", has_text="[1]").first.click()
        panel = page.locator("#article-panel")
        expect(panel).to_be_visible()
        mark = panel.locator("#article-text mark").first
        expect(mark).to_be_visible(timeout=UI_S)
        assert panel.get_attribute("data-doc-id") in COUNCIL_DOCS
        quoted = mark.inner_text().strip()
        assert quoted and quoted in answer.locator(".source-quote").first.inner_text()
        expect(panel.locator("#article-meta")).to_contain_text("2023-06-1")
        expect(mark).to_be_in_viewport()
        if shot := os.environ.get("NEWSRAG_SCREENSHOT"):
            page.screenshot(path=shot)
        page.screenshot(path=str(tmp_path / "web-chat.png"))

        # Keyboard: Escape closes the panel and gives focus back to the citation; Enter on it reopens.
        page.keyboard.press("Escape")
        expect(panel).to_be_hidden()
        expect(answer.locator("a.cite").first).to_be_focused()
        page.keyboard.press("Enter")
        expect(mark).to_be_visible(timeout=UI_S)
        page.keyboard.press("Escape")

        # 3. A follow-up that only makes sense after the first answer: the history goes with it.
        follow = ask(page, FOLLOW_UP)
        sent = watch.asks[-1]
        assert [t["role"] for t in sent["history"]] == ["user", "assistant"] and sent["history"][0][
            "content"
        ] == QUESTION
        expect(follow.locator(".error")).to_have_count(0)
        expect(follow.locator(".answer-text, .abstain")).to_have_count(1)
        expect(follow.locator(".timing")).to_contain_text("searched as")  # rewritten into a standalone question

        # 4. A new chat (no history to rewrite against), and a question the articles cannot answer: an
        # abstention, with the closest sources offered for reading, not an error.
        page.locator("#new-chat").click()
        expect(page.locator("#conversation .turn")).to_have_count(0)
        expect(page.locator("#question")).to_be_focused()
        nothing = ask(page, UNANSWERABLE)
        assert watch.asks[-1]["history"] == []
        expect(nothing.locator(".abstain")).to_contain_text("The articles don't say")
        expect(nothing.locator(".error")).to_have_count(0)
        expect(nothing.locator("section.sources li")).not_to_have_count(0)

        # 5. Bad input is explained in the page (the server's 400), with the options put right after.
        page.locator("#options").evaluate("el => el.open = true")
        page.locator("#since").fill("2024-01-01")
        page.locator("#until").fill("2023-01-01")
        bad = ask(page, QUESTION)
        expect(bad.locator(".error")).to_contain_text("Check the question and options")
        expect(bad.locator(".error")).to_contain_text("since")
        page.locator("#since").fill("")
        page.locator("#until").fill("")

        # 6. Stop: the request is cancelled and the page says so.
        page.locator("#question").fill(QUESTION)
        page.locator("#question").press("Enter")
        page.locator("#stop").click()
        stopped = page.locator("#conversation .turn").last.locator(".answer")
        expect(stopped).to_contain_text("Stopped", timeout=UI_S)
        expect(page.locator("#send")).to_be_visible()

        # 7. Upload an article, ask about it, delete it: gone from the list and from search.
        page.locator("#docs-open").click()
        expect(page.locator("#doc-list li")).to_have_count(5, timeout=UI_S)
        page.locator("#file-input").set_input_files(
            [{"name": "lowmere-library.md", "mimeType": "text/markdown", "buffer": LOWMERE}]
        )
        expect(page.locator("#upload-list li[data-file='lowmere-library.md'] .verdict")).to_contain_text(
            "Added as lowmere-library", timeout=ANSWER_S
        )
        expect(page.locator("#doc-list li")).to_have_count(6, timeout=UI_S)
        expect(page.locator("#doc-list li[data-doc-id='lowmere-library']")).to_contain_text(
            "Harbour Town Opens Floating Library"
        )
        page.keyboard.press("Escape")
        about = ask(page, "What did the town of Lowmere open on its harbour?")
        expect(about.locator(".sources")).to_contain_text("Harbour Town Opens Floating Library")

        page.locator("#docs-open").click()
        page.locator("#doc-list li[data-doc-id='lowmere-library'] button.danger").click()
        dialog = page.locator("#confirm-dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("lowmere-library")
        dialog.locator("button[value=delete]").click()
        expect(page.locator("#doc-list li[data-doc-id='lowmere-library']")).to_have_count(0, timeout=ANSWER_S)
        expect(page.locator("#doc-list li")).to_have_count(5)
        hits = httpx.post(
            f"{base}/v1/search", json={"query": "Lowmere floating library barge", "top_k": 50}, timeout=120
        ).json()["results"]
        assert hits and all(h["doc_id"] != "lowmere-library" for h in hits)

        # 8. A hostile article, dropped on the drop zone: its markup shows as text and never runs.
        page.locator("#dropzone").evaluate(
            """(zone, text) => {
                const data = new DataTransfer();
                data.items.add(new File([text], 'hostile.txt', {type: 'text/plain'}));
                zone.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
            }""",
            HOSTILE.decode(),
        )
        expect(page.locator("#upload-list li[data-file='hostile.txt'] .verdict")).to_contain_text(
            "Added as hostile", timeout=ANSWER_S
        )
        hostile_item = page.locator("#doc-list li[data-doc-id='hostile']")
        expect(hostile_item).to_be_visible(timeout=UI_S)
        hostile_item.locator("button", has_text="Read").click()
        expect(page.locator("#article-text")).to_contain_text("<script>window.__pwned='script'", timeout=UI_S)
        page.keyboard.press("Escape")
        page.keyboard.press("Escape")
        page.locator("#mode").select_option("extractive")
        quoted = ask(page, "What did engineers say about the Zephyrine bridge?")
        expect(quoted.locator(".answer-text")).to_contain_text("onerror")
        quoted.locator("a.cite").first.click()
        # Every quote of the clicked passage is marked; the one holding the markup must show it as text.
        expect(page.locator("#article-text mark", has_text="onerror").first).to_be_visible(timeout=UI_S)
        no_injection(page, watch)

        # 9. Phone width: nothing wider than the screen; the question box stays in reach.
        page.set_viewport_size({"width": 360, "height": 740})
        page.keyboard.press("Escape")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
        expect(page.locator("#question")).to_be_in_viewport()
        assert watch.errors == [], watch.errors


def test_page_asks_for_the_api_key_and_works_with_it(browser, index_dir):
    from playwright.sync_api import expect

    with rag_serve(index_dir, RAG_API_KEY=KEY) as base:
        page, watch = open_page(browser, base)
        dialog = page.locator("#key-dialog")
        expect(dialog).to_be_visible(timeout=UI_S)
        page.locator("#key-input").fill("wrong-key")
        page.locator("#key-input").press("Enter")
        expect(page.locator("#key-error")).to_contain_text("not accepted", timeout=UI_S)
        expect(dialog).to_be_visible()

        page.locator("#key-input").fill(KEY)
        page.locator("#key-input").press("Enter")
        expect(dialog).to_be_hidden(timeout=UI_S)
        expect(page.locator("#status")).to_contain_text(ARTICLES, timeout=UI_S)
        assert page.evaluate("() => sessionStorage.getItem('newsrag.api_key')") == KEY

        page.locator("#mode").select_option("extractive")
        answer = ask(page, QUESTION)
        expect(answer.locator(".answer-text")).to_contain_text("[1]")
        assert watch.asks[-1]["_auth"] == f"Bearer {KEY}"

        # The key lasts for the tab: a reload does not ask again.
        page.reload()
        expect(page.locator("#status")).to_contain_text(ARTICLES, timeout=UI_S)
        expect(dialog).to_be_hidden()
        assert watch.errors == [] and watch.dialogs == []
