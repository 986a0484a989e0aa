"""Drive the Speaking Stone's web page in headless Chromium and check it.

Usage: python page_test.py BASE_URL SCREENSHOT_PATH

BASE_URL is where `nindub serve` listens, e.g. http://127.0.0.1:8080/.
Playwright drives Debian's Chromium (CODEX_CHROMIUM, default
/usr/bin/chromium); no browser is downloaded. The checks:

- the page loads with no console error, page error or failed request;
- the SSE parser of the page copes with a stream cut at every position;
- the model id from /v1/models is shown;
- a greedy answer streams in: the number of token spans grows in several
  steps, not in one blob, and the usage line appears at the end;
- hovering a token lists its candidates with percentages, clicking pins it;
- Stop ends a long answer early, without an error;
- with the server unreachable (requests aborted by the test), the page says
  so in #status; the browser's expected "Failed to load resource" for those
  requests is not counted as an error, anything else is.

A screenshot of the page after the answer is saved at SCREENSHOT_PATH.
One line per check is printed ("ok: ..."); the exit status is non-zero on
the first failure.
"""

import json
import os
import re
import sys
import urllib.error
import urllib.request

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from checks import CheckFailed, check, ok

PROMPT = "Write one sentence about the sea."
MAX_TOKENS = 24
TIMEOUT_MS = 45_000

# A stream with comments, \r\n and \n line endings, a two-line data field and
# a multi-byte character, used to test the page's parser at every split.
SSE_SAMPLE = (
    ": hello\r\n"
    'data: {"a": "é🌊"}\r\n\r\n'
    "data:first\n"
    "data: second\n\n"
    "event: ignored\r\n"
    "data: [DONE]\r\n\r\n"
)
SSE_EXPECTED = ['{"a": "é🌊"}', "first\nsecond", "[DONE]"]


def launch(pw):
    return pw.chromium.launch(
        executable_path=os.environ.get("CODEX_CHROMIUM", "/usr/bin/chromium"),
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    )


def watch(page, expected_failures=()):
    """Collects problems on a page; failures of URLs in expected_failures are allowed."""
    problems = []

    def expected(url):
        return any(url.endswith(suffix) for suffix in expected_failures)

    def on_console(message):
        if message.type != "error":
            return
        url = message.location.get("url", "")
        if message.text.startswith("Failed to load resource") and expected(url):
            return
        problems.append(f"console error: {message.text} ({url})")

    def on_request_failed(request):
        if expected(request.url):
            return
        # The Stop button aborts the chat request: that is not a failure.
        stopped = request.url.endswith("/v1/chat/completions") and "ERR_ABORTED" in (request.failure or "")
        if not stopped:
            problems.append(f"request failed: {request.url} ({request.failure})")

    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", on_request_failed)
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    return problems


def no_problems(problems, when):
    check(not problems, f"{when}:\n  " + "\n  ".join(problems))


def set_input(page, selector, value):
    """Sets an input's value the way a person dragging a slider would."""
    page.eval_on_selector(
        selector,
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', { bubbles: true })); }",
        str(value),
    )


def server_model(base):
    try:
        with urllib.request.urlopen(base + "v1/models", timeout=10) as response:
            return json.load(response)["data"][0]["id"]
    except urllib.error.HTTPError:
        return None  # e.g. 401: the page test does not know the key


def check_parser(page):
    """Feeds SSE_SAMPLE to the page's parser cut at every position, as bytes."""
    results = page.evaluate(
        """(sample) => {
            const bytes = new TextEncoder().encode(sample);
            const outcomes = [];
            for (let cut = 0; cut <= bytes.length; cut++) {
                const events = [];
                const parser = createSseParser((data) => events.push(data));
                const decoder = new TextDecoder();
                parser.push(decoder.decode(bytes.slice(0, cut), { stream: true }));
                parser.push(decoder.decode(bytes.slice(cut), { stream: true }));
                outcomes.push(events);
            }
            return outcomes;
        }""",
        SSE_SAMPLE,
    )
    for cut, events in enumerate(results):
        check(events == SSE_EXPECTED, f"SSE parser, stream cut at byte {cut}: got {events!r}, want {SSE_EXPECTED!r}")
    ok(f"the page's SSE parser gives the same events for the stream cut at each of {len(results)} positions")


def check_answer(page, base, screenshot):
    model = server_model(base)
    page.wait_for_function(
        "() => !['', '…'].includes(document.querySelector('#model').textContent.trim())",
        timeout=TIMEOUT_MS,
    )
    shown = page.text_content("#model").strip()
    if model is not None:
        check(shown == model, f"the page shows model {shown!r}, /v1/models says {model!r}")
    ok(f"model id shown: {shown}")

    page.fill("#prompt", PROMPT)
    set_input(page, "#temperature", 0)
    set_input(page, "#max_tokens", MAX_TOKENS)
    check(page.text_content('output[for="temperature"]') == "0.00", "the temperature slider does not show 0.00")
    check(page.text_content('output[for="max_tokens"]') == str(MAX_TOKENS), "the max_tokens slider does not show its value")
    ok("sliders set: temperature 0 (greedy), max_tokens 24")

    # Record the number of token spans each time the answer changes. If the
    # answer came as one blob, there would be a single count.
    page.evaluate(
        """() => {
            window.tokCounts = [];
            const answer = document.querySelector('#answer');
            new MutationObserver(() => {
                window.tokCounts.push(answer.querySelectorAll('.tok').length);
            }).observe(answer, { childList: true });
        }"""
    )
    page.click("#send")
    page.wait_for_function(
        "() => ['done', 'error', 'stopped'].includes(document.body.dataset.state)",
        timeout=TIMEOUT_MS,
    )
    state = page.evaluate("document.body.dataset.state")
    check(state == "done", f"the answer ended in state {state!r}: {page.text_content('#status')!r}")
    counts = page.evaluate("window.tokCounts")
    final = page.locator("#answer .tok").count()
    intermediate = sorted({c for c in counts if 0 < c < final})
    check(final >= 3, f"only {final} tokens came back")
    check(
        len(intermediate) >= 2,
        f"the answer did not stream: token counts seen {counts}, final {final}",
    )
    ok(f"streamed {final} tokens, seen at {len(intermediate)} intermediate counts")

    usage = page.text_content("#usage")
    check(re.search(r"\d+ prompt \+ \d+ completion tokens", usage), f"usage line is {usage!r}")
    check("finish: stop" in usage or "finish: length" in usage, f"no finish_reason in {usage!r}")
    ok(f"usage: {usage}")

    rows = page.locator("#candidates .cand")
    token = page.locator("#answer .tok").nth(1)
    token.hover()
    check(rows.count() >= 2, f"hovering a token shows {rows.count()} candidate rows")
    for text in rows.all_text_contents():
        check(re.search(r"\d%", text), f"candidate row without a percentage: {text!r}")
    check(page.locator("#candidates .cand.chosen").count() == 1, "the chosen candidate is not highlighted")
    ok(f"hover shows {rows.count()} candidates with percentages, the chosen one highlighted")

    page.locator("#answer .tok").nth(2).click()
    page.hover("#prompt")  # leaving the answer goes back to the pinned token
    head = page.text_content("#candidates .cand-head")
    check(head.startswith("Token 3 ") and "pinned" in head, f"after pinning token 3 the panel says {head!r}")
    ok(f"click pins a token: {head}")

    page.screenshot(path=screenshot, full_page=True)
    ok(f"screenshot saved: {screenshot}")


def check_stop(page):
    set_input(page, "#max_tokens", 512)
    page.click("#send")
    page.wait_for_function("() => document.querySelectorAll('#answer .tok').length >= 2", timeout=TIMEOUT_MS)
    page.click("#stop")
    page.wait_for_function("() => document.body.dataset.state !== 'streaming'", timeout=TIMEOUT_MS)
    state = page.evaluate("document.body.dataset.state")
    usage = page.text_content("#usage")
    check(state in ("stopped", "done"), f"after Stop the page is in state {state!r}")
    check(page.is_hidden("#status"), f"Stop raised a warning: {page.text_content('#status')!r}")
    check(page.is_enabled("#send") and page.is_disabled("#stop"), "Send/Stop buttons not reset after Stop")
    ok(f"Stop ends the answer ({state}): {usage}")


def check_unreachable(browser, base):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    blocked = ("/v1/chat/completions", "/health")
    problems = watch(page, expected_failures=blocked)
    for suffix in blocked:
        page.route(f"**{suffix}", lambda route: route.abort())
    page.goto(base, wait_until="load")
    page.fill("#prompt", PROMPT)
    page.click("#send")
    page.wait_for_function("() => document.body.dataset.state === 'error'", timeout=TIMEOUT_MS)
    check(page.is_visible("#status"), "#status is not visible with the server unreachable")
    status = page.text_content("#status")
    check("not answering" in status, f"#status says {status!r}")
    check(page.is_enabled("#send"), "Send stays disabled after a failed request")
    no_problems(problems, "with the server unreachable")
    ok(f"unreachable server reported: {status}")
    page.close()


def main(base, screenshot):
    if not base.endswith("/"):
        base += "/"
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            problems = watch(page)
            page.goto(base, wait_until="load")
            no_problems(problems, "loading the page")
            ok(f"page loaded: {page.title()}")
            check_parser(page)
            check_answer(page, base, screenshot)
            check_stop(page)
            no_problems(problems, "using the page")
            ok("no console error, page error or failed request")
            check_unreachable(browser, base)
        finally:
            browser.close()
    print("page: all checks passed")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(main(sys.argv[1], sys.argv[2]))
    except (CheckFailed, PlaywrightError) as e:
        print(f"page: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
