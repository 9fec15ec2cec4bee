"""The workbench in a real browser: Debian's chromium driven by Playwright (no browser download). Logging in,
filtering and searching, playing a call and seeking by clicking a word, correcting a verdict and seeing the score
and the calibration change, a manager refused another manager's call, and a screenshot of the call page."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from pipeline.schema import CallResult
from tests.conftest import WORKBENCH_USERS

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Browser:
    assert CHROMIUM.is_file(), "Debian's chromium is needed (make test installs it)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio"])
        yield launched
        launched.close()


def log_in(browser: Browser, site, login: str) -> Page:
    page = browser.new_context(locale="ru-RU", viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{site.url}/calls")
    expect(page).to_have_url(re.compile(r"/login\?next=/calls$"))
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", WORKBENCH_USERS[login][3])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/calls$"))
    return page


def until_player(page: Page, condition: str, x: float = 0.0) -> float:
    """Wait until the player is "ready" (its length known), "near" x seconds and playing, or "after" x seconds,
    checking on the player's own events (no polling; no string evaluated in the page, which its CSP forbids);
    returns the player's time then."""
    return page.evaluate("""([condition, x]) => new Promise((resolve, reject) => {
        const p = document.getElementById('player');
        setTimeout(() => reject(new Error(`player never ${condition} ${x}: at ${p.currentTime}, paused ${p.paused}`)),
                   30000);
        const holds = () => condition === 'ready' ? p.readyState >= 1
            : condition === 'near' ? Math.abs(p.currentTime - x) < 1.5 && !p.paused
            : p.currentTime > x;
        const events = ['loadedmetadata', 'timeupdate', 'seeked', 'playing'];
        const on = () => {
            if (holds()) { events.forEach(e => p.removeEventListener(e, on)); resolve(p.currentTime); }
        };
        if (holds()) { resolve(p.currentTime); return; }
        events.forEach(e => p.addEventListener(e, on));
    })""", [condition, x])


def _stored(site, call_id: str) -> CallResult:
    return CallResult.from_json((site.store_root / "calls" / call_id / "result.json").read_bytes())


def test_a_wrong_password_is_refused_in_the_page(browser, workbench_site):
    page = browser.new_page()
    page.goto(f"{workbench_site.url}/login")
    page.fill("input[name=login]", "anna")
    page.fill("input[name=password]", "not her password")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("Неверный логин или пароль")
    page.close()


def test_filter_and_search_the_calls(browser, workbench_site):
    page = log_in(browser, workbench_site, "anna")
    expect(page.locator("#call-count")).to_have_text("Найдено звонков: 18")
    page.select_option("select[name=manager]", "15")
    page.click("#filters button[type=submit]")
    expect(page.locator("#call-count")).to_have_text("Найдено звонков: 4")
    page.fill("input[name=q]", "цены")
    page.click("#filters button[type=submit]")
    rows = page.locator("#calls tbody tr[data-call]")
    assert 0 < rows.count() < 4
    for call_id in rows.evaluate_all("rows => rows.map(r => r.dataset.call)"):
        result = _stored(workbench_site, call_id)
        assert result.metadata.manager_id == "15"
        assert any("цен" in turn.text.lower() for turn in result.turns)
    expect(page.locator(".snippet").first).to_contain_text("цен")
    page.close()


def test_play_a_call_and_seek_by_clicking_a_word(browser, workbench_site):
    page = log_in(browser, workbench_site, "anna")
    page.goto(f"{workbench_site.url}/calls/dental-stereo")
    player = page.locator("#player")
    until_player(page, "ready")
    duration = player.evaluate("p => p.duration")
    assert duration == pytest.approx(_stored(workbench_site, "dental-stereo").duration_s, abs=0.5)
    words = page.locator("#transcript .w")
    target = words.nth(words.count() * 2 // 3)
    start = float(target.get_attribute("data-s"))
    target.click()
    until_player(page, "near", start)
    until_player(page, "after", start + 0.3)  # it plays on
    expect(page.locator("#transcript .w.playing")).to_have_count(1)
    playing = float(page.locator("#transcript .w.playing").get_attribute("data-s"))
    assert start <= playing <= start + 5
    # A criterion's evidence seeks to its moment too.
    evidence = page.locator("#criteria .evidence button.seek").first
    moment = float(evidence.get_attribute("data-seek"))
    evidence.click()
    until_player(page, "near", moment)
    page.close()


def test_correct_a_verdict_and_see_the_score_and_the_calibration_change(browser, workbench_site):
    before = _stored(workbench_site, "logistics-stereo")
    criterion = next(c for c in before.score.criteria if c.verdict == "met" and c.max_points)
    page = log_in(browser, workbench_site, "anna")
    page.goto(f"{workbench_site.url}/calls/logistics-stereo")
    expect(page.locator("#score-total")).to_have_text(f"{before.score.total:.1f}".replace(".", ","))
    block = page.locator(f"#criterion-{criterion.id}")
    block.locator("select[name=verdict]").select_option("not_met")
    block.locator("input[name=comment]").fill("клиент не услышал")
    block.locator("button[type=submit]").click()
    expect(page.locator("#reviewed-by")).to_contain_text("Анна Петрова")
    after = _stored(workbench_site, "logistics-stereo")
    assert after.score.total < before.score.total
    expect(page.locator("#score-total")).to_have_text(f"{after.score.total:.1f}".replace(".", ","))
    expect(page.locator(f"#criterion-{criterion.id}")).to_have_attribute("data-verdict", "not_met")
    expect(page.locator("#review-history")).to_contain_text("клиент не услышал")
    page.goto(f"{workbench_site.url}/calibration")
    row = page.locator(f'#calibration tr[data-criterion="{criterion.id}"]')
    expect(row).to_contain_text("logistics-stereo")
    row.locator("a", has_text="logistics-stereo").click()
    expect(page).to_have_url(re.compile(rf"/calls/logistics-stereo#criterion-{criterion.id}$"))
    page.close()


def test_a_manager_opening_another_manager_s_call_gets_403(browser, workbench_site):
    page = log_in(browser, workbench_site, "alexey")
    expect(page.locator("#call-count")).to_have_text("Найдено звонков: 4")
    answer = page.goto(f"{workbench_site.url}/calls/dental-stereo")
    assert answer is not None and answer.status == 403
    expect(page.locator("#error-message")).to_contain_text("другого менеджера")
    page.close()


def test_the_call_page_looks_right(browser, workbench_site, tmp_path):
    page = log_in(browser, workbench_site, "anna")
    page.goto(f"{workbench_site.url}/calls/stroymat-stereo")
    until_player(page, "ready")
    shot = tmp_path / "call.png"
    page.screenshot(path=str(shot), full_page=False)
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert image.shape[:2] == (1000, 1400)
    assert image.std() > 20  # text and colours, not a blank page
    # The two columns: the transcript to the left of the criteria, both on screen.
    transcript, criteria = page.locator("#transcript").bounding_box(), page.locator("#criteria").bounding_box()
    assert transcript and criteria and transcript["x"] + transcript["width"] <= criteria["x"]
    # Hits are highlighted and say their lexicon; the turns are labelled by role.
    hit = page.locator("#transcript .w.hit").first
    assert re.match(r"^\w+: \w+", hit.get_attribute("title") or "")
    colour = hit.evaluate("w => getComputedStyle(w).backgroundColor")
    assert colour not in ("rgba(0, 0, 0, 0)", "transparent")
    expect(page.locator(".turn.role-manager .who").first).to_contain_text("Менеджер")
    expect(page.locator(".turn.role-client .who").first).to_contain_text("Клиент")
    page.close()
