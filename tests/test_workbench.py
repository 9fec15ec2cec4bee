"""The workbench over HTTP, against uvicorn on loopback: every access rule, the CSRF check, login throttling,
search and filters, ranged audio, reviews entering the score, and bad input refused with a clear answer."""

from __future__ import annotations

import json
import re
import subprocess

import httpx
import pytest

from pipeline.schema import CallResult
from pipeline.stores import open_store, result_key
from tests.cli_helpers import CALLQA
from tests.conftest import WORKBENCH_USERS, WorkbenchSite

HTML = {"accept": "text/html"}


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def log_in(site: WorkbenchSite, login: str, password: str | None = None) -> httpx.Client:
    client = httpx.Client(base_url=site.url, headers=HTML, timeout=60)
    form = client.get("/login")
    answer = client.post("/login", data={"login": login, "password": password or WORKBENCH_USERS[login][3],
                                         "csrf_token": _csrf(form.text), "next": "/calls"})
    assert answer.status_code == 303, answer.text
    return client


@pytest.fixture(scope="module")
def qa(workbench_site) -> httpx.Client:
    return log_in(workbench_site, "anna")


def _stored(site: WorkbenchSite, call_id: str) -> CallResult:
    data = open_store(str(site.store_root), None).read(result_key(call_id))  # type: ignore[arg-type]
    assert data is not None
    return CallResult.from_json(data)


def test_nothing_is_shown_without_logging_in(workbench_site):
    with httpx.Client(base_url=workbench_site.url, timeout=30) as anonymous:
        page = anonymous.get("/calls", headers=HTML)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        for path in ("/calls", "/calls/dental-stereo", "/calls/dental-stereo/audio", "/calibration", "/lexicons",
                     "/report", "/lexicons/price.yaml"):
            answer = anonymous.get(path)
            assert answer.status_code == 401, path
            assert "Алексей" not in answer.text and "дентал" not in answer.text.lower()
        assert anonymous.get("/healthz").text == "ok"


def test_login_sets_a_signed_httponly_cookie_and_security_headers(workbench_site):
    client = httpx.Client(base_url=workbench_site.url, headers=HTML, timeout=30)
    form = client.get("/login")
    answer = client.post("/login", data={"login": "anna", "password": WORKBENCH_USERS["anna"][3],
                                         "csrf_token": _csrf(form.text)})
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    assert WORKBENCH_USERS["anna"][3] not in answer.headers["set-cookie"]
    page = client.get("/calls")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    hashes = (workbench_site.store_root.parent / "users.yaml").read_text(encoding="utf-8")
    assert "$argon2id$" in hashes and "$argon2id$" not in page.text
    secret = (workbench_site.store_root.parent / "users.yaml.secret").read_text(encoding="utf-8").strip()
    assert secret not in page.text and secret not in answer.headers["set-cookie"]


def test_a_form_posted_without_its_csrf_token_is_refused(workbench_site, qa):
    before = _stored(workbench_site, "dental-stereo")
    criterion = before.score.criteria[0].id  # type: ignore[union-attr]
    for token in (None, "forged-token"):
        data = {"criterion": criterion, "verdict": "not_met"} | ({"csrf_token": token} if token else {})
        answer = qa.post("/calls/dental-stereo/reviews", data=data)
        assert answer.status_code == 403 and "CSRF" in answer.text
    assert _stored(workbench_site, "dental-stereo").score == before.score
    # The login form too: a session cannot be planted from another site.
    with httpx.Client(base_url=workbench_site.url, timeout=30) as other:
        assert other.post("/login", data={"login": "anna", "password": WORKBENCH_USERS["anna"][3]}).status_code == 403


def test_failed_logins_are_throttled_per_address_and_login_until_the_window_passes(workbench_site):
    client = httpx.Client(base_url=workbench_site.url, headers=HTML, timeout=30)
    limiter = workbench_site.bench.limiter

    def attempt(password: str) -> httpx.Response:
        return client.post("/login", data={"login": "maria", "password": password,
                                           "csrf_token": _csrf(client.get("/login").text)})

    for _ in range(limiter.attempts):
        assert attempt("wrong password").status_code == 401
    refused = attempt(WORKBENCH_USERS["maria"][3])  # even the right password, while throttled
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "Слишком много" in refused.text
    workbench_site.clock.advance(limiter.window_s + 1)
    assert attempt(WORKBENCH_USERS["maria"][3]).status_code == 303


def test_a_manager_sees_only_their_own_calls(workbench_site):
    alexey = log_in(workbench_site, "alexey")  # Bitrix24 user 12
    listed = alexey.get("/calls", params={"sort": "manager"}).text
    shown = set(re.findall(r'data-call="([^"]+)"', listed))
    assert shown and all(call.startswith(("stroymat", "logistics")) for call in shown)
    assert "Найдено звонков: 4" in listed
    assert alexey.get("/calls/stroymat-stereo").status_code == 200
    assert alexey.get("/calls/stroymat-stereo/audio", headers={"range": "bytes=0-9"}).status_code == 206
    for path in ("/calls/dental-stereo", "/calls/dental-stereo/audio"):
        refused = alexey.get(path)
        assert refused.status_code == 403 and "другого менеджера" in refused.text
    for path in ("/calibration", "/lexicons", "/report"):
        assert alexey.get(path).status_code == 403
    # Filtering by another manager's id does not widen what they see.
    assert "Найдено звонков: 0" in alexey.get("/calls", params={"manager": "15"}).text
    page = alexey.get("/calls/stroymat-stereo").text
    assert 'class="review"' not in page  # no review forms for a manager


def test_a_supervisor_sees_every_call_and_the_report_but_cannot_review_or_edit(workbench_site):
    boss = log_in(workbench_site, "boss")
    assert "Найдено звонков: 18" in boss.get("/calls").text
    assert boss.get("/calls/dental-mono").status_code == 200
    report = boss.get("/report", params={"days": 3650})
    assert report.status_code == 200 and 'href="/calls?manager=15"' in report.text
    assert boss.get("/calibration").status_code == 200
    criterion = _stored(workbench_site, "dental-stereo").score.criteria[0].id  # type: ignore[union-attr]
    token = _csrf(boss.get("/calls/dental-stereo").text)
    assert boss.post("/calls/dental-stereo/reviews", data={"criterion": criterion, "verdict": "met",
                                                           "csrf_token": token}).status_code == 403
    assert boss.get("/lexicons").status_code == 403


def test_search_finds_word_forms_and_filters_combine(workbench_site, qa):
    page = qa.get("/calls", params={"q": "ценой"}).text  # said as "цена", "цену"...
    found = set(re.findall(r'data-call="([^"]+)"', page))
    stored = {call_id: _stored(workbench_site, call_id) for call_id in found}
    assert found and all(any("цен" in turn.text.lower() for turn in result.turns) for result in stored.values())
    assert 'class="snippet"' in page
    only_maria = set(re.findall(r'data-call="([^"]+)"', qa.get("/calls", params={"q": "ценой", "manager": "15"}).text))
    assert only_maria == {call for call in found if stored[call].metadata.manager_id == "15"}
    assert "Найдено звонков: 0" in qa.get("/calls", params={"q": "ксилофон"}).text
    # A failed criterion, and a lexicon hit.
    dental = _stored(workbench_site, "dental-stereo")
    failed = next(c.id for c in dental.score.criteria if c.verdict == "not_met")  # type: ignore[union-attr]
    everything = {path.name: _stored(workbench_site, path.name)
                  for path in (workbench_site.store_root / "calls").iterdir()}
    expected = {call_id for call_id, result in everything.items()
                if result.score and any(c.id == failed and c.verdict == "not_met" for c in result.score.criteria)}
    listed = qa.get("/calls", params={"failed": failed}).text
    assert f"Найдено звонков: {len(expected)}<" in listed
    assert set(re.findall(r'data-call="([^"]+)"', listed)) <= expected
    hit = dental.hits[0]
    pages = qa.get("/calls", params={"hit": f"{hit.lexicon}:{hit.term}", "since": "2026-11-28",
                                     "until": "2026-11-28", "manager": "15"}).text
    assert 'data-call="dental-stereo"' in pages
    assert all(any(h.lexicon == hit.lexicon and h.term == hit.term for h in everything[call].hits)
               for call in re.findall(r'data-call="([^"]+)"', pages))
    assert "Найдено звонков: 0" in qa.get("/calls", params={"since": "2030-01-01"}).text


def test_the_list_pages_and_sorts(workbench_site, qa):
    first = qa.get("/calls", params={"sort": "score", "order": "asc"}).text
    second = qa.get("/calls", params={"sort": "score", "order": "asc", "page": 2}).text
    one, two = re.findall(r'data-call="([^"]+)"', first), re.findall(r'data-call="([^"]+)"', second)
    assert len(one) == 10 and len(two) == 8 and not set(one) & set(two)
    scores = [_stored(workbench_site, call).score.total for call in one + two]  # type: ignore[union-attr]
    assert scores == sorted(scores)
    assert qa.get("/calls", params={"sort": "drop table"}).status_code == 400
    assert qa.get("/calls", params={"since": "yesterday-ish"}).status_code == 400


def test_audio_is_served_in_ranges_from_the_copy_or_the_source(workbench_site, qa):
    store = open_store(str(workbench_site.store_root), None)  # type: ignore[arg-type]
    size = store.size("calls/dental-stereo/audio.webm")
    assert size
    whole = qa.get("/calls/dental-stereo/audio")
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/webm"
    part = qa.get("/calls/dental-stereo/audio", headers={"range": "bytes=100-199"})
    assert part.status_code == 206 and part.headers["content-range"] == f"bytes 100-199/{size}"
    assert part.content == store.read_range("calls/dental-stereo/audio.webm", 100, 100) == whole.content[100:200]
    tail = qa.get("/calls/dental-stereo/audio", headers={"range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == whole.content[-50:]
    past = qa.get("/calls/dental-stereo/audio", headers={"range": f"bytes={size + 10}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    assert qa.get("/calls/dental-stereo/audio", headers={"range": "lines=1-2"}).status_code == 416
    # A mono call without a copy plays from its source file.
    mono = qa.get("/calls/dental-mono/audio", headers={"range": "bytes=0-3"})
    assert mono.status_code == 206 and mono.headers["content-type"] == "audio/mpeg"
    # A Bitrix24 call without a copy: the page says why there is no audio.
    page = qa.get("/calls/fitness-mono").text
    assert 'id="no-audio"' in page and 'id="player"' not in page
    assert qa.get("/calls/fitness-mono/audio").status_code == 404


def test_unknown_and_malicious_call_ids_are_not_found(workbench_site, qa):
    for call_id in ("no-such-call", "%2e%2e", "%2e%2e%2fusers.yaml", "..%2F..%2Fusers.yaml", "a%00b"):
        answer = qa.get(f"/calls/{call_id}")
        assert answer.status_code == 404, call_id
        assert "argon2" not in answer.text


def test_a_review_changes_the_score_says_who_and_survives_a_rescore(workbench_site, qa):
    before = _stored(workbench_site, "internet-stereo")
    criterion = next(c for c in before.score.criteria if c.verdict == "met" and c.max_points)  # type: ignore[union-attr]
    token = _csrf(qa.get("/calls/internet-stereo").text)
    answer = qa.post("/calls/internet-stereo/reviews", data={
        "criterion": criterion.id, "verdict": "not_met", "comment": "не назвал компанию", "csrf_token": token})
    assert answer.status_code == 303 and answer.headers["location"].endswith(f"#criterion-{criterion.id}")
    after = _stored(workbench_site, "internet-stereo")
    reviewed = next(c for c in after.score.criteria if c.id == criterion.id)  # type: ignore[union-attr]
    assert reviewed.verdict == "not_met" and reviewed.review and reviewed.review.automatic == "met"
    assert after.score.total < before.score.total and after.score.reviewed_by == ["Анна Петрова"]  # type: ignore[union-attr]
    page = qa.get("/calls/internet-stereo").text
    assert "проверено: Анна Петрова" in page and "не назвал компанию" in page
    reviews = json.loads((workbench_site.store_root / "calls/internet-stereo/reviews.json").read_text("utf-8"))
    assert [r["verdict"] for r in reviews["reviews"]][-1] == "not_met"
    # `callqa rescore` of the stored call keeps the person's verdict.
    subprocess.run([str(CALLQA), "rescore", "--lexicons", str(workbench_site.lexicons),
                    str(workbench_site.store_root / "calls/internet-stereo/result.json")], check=True,
                   capture_output=True)
    rescored = _stored(workbench_site, "internet-stereo")
    assert next(c for c in rescored.score.criteria if c.id == criterion.id).verdict == "not_met"  # type: ignore[union-attr]
    # The list marks the call reviewed.
    assert 'data-call="internet-stereo"' in qa.get("/calls", params={"reviewed": "yes"}).text


@pytest.mark.parametrize("form, status", [
    ({"criterion": "no_such_criterion", "verdict": "met"}, 422),
    ({"criterion": "CRITERION", "verdict": "maybe"}, 422),
    ({"criterion": "CRITERION"}, 422),
    ({"criterion": "CRITERION", "verdict": "met", "comment": "x" * 3000}, 422),
])
def test_a_malformed_review_is_refused_and_stores_nothing(workbench_site, qa, form, status):
    criterion = _stored(workbench_site, "windows-stereo").score.criteria[0].id  # type: ignore[union-attr]
    data = {key: value.replace("CRITERION", criterion) for key, value in form.items()}
    data["csrf_token"] = _csrf(qa.get("/calls/windows-stereo").text)
    assert qa.post("/calls/windows-stereo/reviews", data=data).status_code == status
    assert not (workbench_site.store_root / "calls/windows-stereo/reviews.json").exists()
    assert qa.post("/calls/no-such-call/reviews", data=data | {"verdict": "met", "comment": ""}).status_code == 404


def test_calibration_counts_the_reviews(workbench_site, qa):
    call = _stored(workbench_site, "furniture-stereo")
    criterion = next(c for c in call.score.criteria if c.verdict == "met" and c.max_points)  # type: ignore[union-attr]
    qa.post("/calls/furniture-stereo/reviews", data={"criterion": criterion.id, "verdict": "not_met",
                                                     "csrf_token": _csrf(qa.get("/calls/furniture-stereo").text)})
    page = qa.get("/calibration").text
    row = re.search(rf'<tr[^>]*data-criterion="{criterion.id}">(.*?)</tr>', page, re.S)
    assert row and 'href="/calls/furniture-stereo#criterion-' in row.group(1)


def test_lexicon_pages_try_preview_and_refuse_a_broken_edit(workbench_site, qa):
    tried = qa.get("/lexicons", params={"phrase": "могу предложить вам скидку"}).text
    assert 'id="phrase-hits"' in tried and "скидка" in tried
    edit = qa.get("/lexicons/price.yaml")
    assert edit.status_code == 200
    text = (workbench_site.lexicons / "price.yaml").read_text(encoding="utf-8")
    broken = text + "\n  - broken: [unclosed\n"
    answer = qa.post("/lexicons/price.yaml/save", data={"text": broken, "csrf_token": _csrf(edit.text)})
    assert answer.status_code == 422 and "price.yaml:" in answer.text
    assert (workbench_site.lexicons / "price.yaml").read_text(encoding="utf-8") == text
    preview = qa.post("/lexicons/price.yaml/preview", data={"text": text, "csrf_token": _csrf(edit.text)})
    assert preview.status_code == 200 and 'id="no-changes"' in preview.text
    for name in ("../users.yaml", "..%2Fusers.yaml", "nothing.yaml"):
        assert qa.get(f"/lexicons/{name}").status_code == 404
    assert qa.post("/lexicons/..%2Fusers.yaml/save", data={"text": "x", "csrf_token": _csrf(edit.text)}
                   ).status_code == 404


def test_user_command_adds_lists_and_removes_without_showing_hashes(tmp_path):
    users = tmp_path / "users.yaml"
    run = [str(CALLQA), "user"]
    added = subprocess.run([*run, "add", "olga", "--role", "manager", "--name", "Ольга", "--bitrix24-user-id",
                            "21", "--password-stdin", "--users", str(users)], input="olga-password-1\n",
                           capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    assert oct(users.stat().st_mode & 0o777) == "0o600"
    listed = subprocess.run([*run, "list", "--users", str(users)], capture_output=True, text=True, check=True)
    assert "olga" in listed.stdout and "manager" in listed.stdout and "argon2" not in listed.stdout
    short = subprocess.run([*run, "add", "ivan", "--role", "qa", "--password-stdin", "--users", str(users)],
                           input="short\n", capture_output=True, text=True)
    assert short.returncode == 3 and "too short" in short.stderr
    manager = subprocess.run([*run, "add", "petr", "--role", "manager", "--password-stdin", "--users", str(users)],
                             input="petr-password-1\n", capture_output=True, text=True)
    assert manager.returncode == 3 and "--bitrix24-user-id" in manager.stderr
    assert subprocess.run([*run, "remove", "olga", "--users", str(users)], capture_output=True).returncode == 0
    gone = subprocess.run([*run, "remove", "olga", "--users", str(users)], capture_output=True, text=True)
    assert gone.returncode == 3 and "no user" in gone.stderr


def test_single_sign_on_trusts_the_header_only_from_the_proxy_and_framing_only_by_the_portal(workbench_site):
    from pipeline.web.app import create_app
    from tests.services import asgi_server

    settings = workbench_site.bench.settings
    web = settings.web.model_copy(update={
        "trusted_user_header": "X-Remote-User", "https": True,
        "frame_ancestors": ["https://example.bitrix24.ru"],
        "index_path": workbench_site.store_root.parent / "sso-index.sqlite"})
    app = create_app(settings.model_copy(update={"web": web}))
    with asgi_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        # Behind the proxy: the peer is the proxy, X-Forwarded-For names the user's machine.
        page = client.get("/calls", headers={"X-Remote-User": "boss", "X-Forwarded-For": "203.0.113.5"})
        assert page.status_code == 200 and "Борис Руководов" in page.text
        assert client.get("/calls", headers={"X-Remote-User": "nobody"}).status_code == 401
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors https://example.bitrix24.ru" in csp and "x-frame-options" not in page.headers
        form = client.get("/login")
        cookie = form.headers["set-cookie"].lower()
        assert "samesite=none" in cookie and "secure" in cookie
    # The same header from a client that is not a trusted proxy is ignored.
    untrusted = web.model_copy(update={"trusted_proxies": ["10.0.0.1"]})
    app = create_app(settings.model_copy(update={"web": untrusted}))
    with asgi_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/calls", headers={"X-Remote-User": "boss"}).status_code == 401
        # Nor does naming the proxy in X-Forwarded-For make a client one.
        assert client.get("/calls", headers={"X-Remote-User": "boss", "X-Forwarded-For": "10.0.0.1"}
                          ).status_code == 401
    # A wildcard would believe anyone's header, and a framing origin must be an https origin.
    from pydantic import ValidationError

    for bad in ({"trusted_proxies": ["*"]}, {"frame_ancestors": ["*"]}, {"frame_ancestors": ["http://a.ru; x"]}):
        with pytest.raises(ValidationError):
            type(web).model_validate({**web.model_dump(), **bad})


def test_a_session_ends_after_its_age_and_a_removed_user_is_out_at_once(workbench_site, tmp_path):
    import shutil

    from pipeline.web.app import create_app
    from pipeline.web.users import UserBook
    from tests.conftest import FakeClock
    from tests.services import asgi_server

    users = tmp_path / "users.yaml"
    shutil.copy(workbench_site.store_root.parent / "users.yaml", users)
    settings = workbench_site.bench.settings
    web = settings.web.model_copy(update={"users_file": users, "index_path": tmp_path / "index.sqlite"})
    clock = FakeClock(workbench_site.clock.now)
    app = create_app(settings.model_copy(update={"web": web}), clock=clock)
    with asgi_server(app) as url:
        site = WorkbenchSite(url=url, store_root=workbench_site.store_root, lexicons=workbench_site.lexicons,
                             clock=clock, app=app)
        anna, maria = log_in(site, "anna"), log_in(site, "maria")
        assert anna.get("/calls").status_code == 200 and maria.get("/calls").status_code == 200
        assert UserBook(users).remove("maria")
        assert maria.get("/calls").status_code == 303  # back to the login form
        assert anna.get("/calls").status_code == 200
        clock.advance(web.session_max_age_s + 1)
        assert anna.get("/calls").status_code == 303
        # A new password ends the sessions opened with the old one.
        boss = log_in(site, "boss")
        assert boss.get("/calls").status_code == 200
        UserBook(users).add("boss", name="Борис Руководов", role="supervisor", password="a-new-password-2")
        assert boss.get("/calls").status_code == 303
        assert log_in(site, "boss", "a-new-password-2").get("/calls").status_code == 200


def test_oversized_and_odd_requests_get_clear_refusals_not_errors(workbench_site, qa):
    token = _csrf(qa.get("/calls/dental-stereo").text)
    huge = qa.post("/login", content=b"login=" + b"a" * (9 * 1024 * 1024),
                   headers={"content-type": "application/x-www-form-urlencoded"})
    assert huge.status_code == 413
    assert qa.post("/calls/dental-stereo/reviews", data={"criterion": "x", "verdict": "met"},
                   headers={"X-CSRF-Token": "токен".encode()}).status_code == 403
    assert qa.get("/calls/dental-stereo/audio", headers={"range": "bytes=" + "9" * 5000 + "-"}).status_code == 416
    assert qa.post("/login", data={"login": "x" * 65, "password": "p", "csrf_token": token}).status_code == 422
    # Pages are not cached (they show transcripts); audio neither.
    page = qa.get("/calls/dental-stereo")
    assert page.headers["cache-control"] == "no-store" and page.headers["cross-origin-resource-policy"] == "same-origin"
    assert "no-store" in qa.get("/calls/dental-stereo/audio", headers={"range": "bytes=0-1"}).headers["cache-control"]


def test_the_index_follows_the_store_new_calls_finished_runs_and_deletions(workbench_site, tmp_path):
    import shutil

    from pipeline.lexicon.text import lemmas
    from pipeline.web.index import CallFilter, CallIndex

    root = tmp_path / "store"
    shutil.copytree(workbench_site.store_root, root)
    store = open_store(str(root), None)  # type: ignore[arg-type]
    index = CallIndex(tmp_path / "index.sqlite", store, lemmas)
    assert index.refresh() == 18 and index.refresh() == 0  # the second look finds nothing new
    # A call stored since: found by the next look.
    copied = _stored(workbench_site, "dental-stereo").model_copy(update={"call_id": "dental-copy"})
    store.write(result_key("dental-copy"), copied.to_json().encode())
    assert index.refresh() == 1 and index.manager_of("dental-copy") == (True, "15")
    # A call re-scored by a run: re-indexed once the run has finished, not before.
    rescored = copied.model_copy(update={"metadata": copied.metadata.model_copy(update={"manager_id": "99"})})
    store.write(result_key("dental-copy"), rescored.to_json().encode())
    run = {"run_id": "r1", "source": "x", "store": "y", "started_at": "2026-12-05T02:00:00+03:00", "finished_at": "",
           "wall_s": 0, "calls": []}
    store.write("runs/r1.json", json.dumps(run).encode())
    assert index.refresh() == 0 and index.manager_of("dental-copy") == (True, "15")
    run |= {"finished_at": "2026-12-05T02:10:00+03:00", "calls": [{"call_id": "dental-copy", "status": "rescored"}]}
    store.write("runs/r1.json", json.dumps(run).encode())
    assert index.refresh() == 1 and index.manager_of("dental-copy") == (True, "99")
    assert index.refresh() == 0
    # A call deleted from the store leaves the index.
    store.delete(result_key("dental-copy"))
    index.refresh()
    assert index.manager_of("dental-copy") == (False, None)
    assert index.search(CallFilter(manager="99")).total == 0
    # The file is disposable: a new index over the same store finds the same calls.
    index.close()
    (tmp_path / "index.sqlite").unlink()
    assert CallIndex(tmp_path / "index.sqlite", store, lemmas).refresh() == 18
