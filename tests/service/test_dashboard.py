"""The dashboard in a real browser: Debian's Chromium driven by Playwright (launched by its
executable path: Playwright's own browser downloads are not reachable here), against the
started service. Sign in by a one-time link, start a task from the form, watch its lines
arrive live, cancel one, and check that another user's task is a 404 page, that what a
task prints is shown as text, and that axe-core finds no serious violation. Screenshots
of each page, light and dark, narrow and wide, go to ``test-artifacts/dashboard/``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Service, admin

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"


@pytest.fixture(scope="module", name="chromium")
def _chromium() -> Iterator[Any]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # As root Chromium needs --no-sandbox; the page is this test's own service.
        browser = playwright.chromium.launch(executable_path=executable,
                                             args=["--no-sandbox"])
        yield browser
        browser.close()


def _link(service: Service, email: str) -> str:
    out = subprocess.run([sys.executable, "-m", "rclaude_infra", "users", "login-link",
                          email, "--server", service.url], capture_output=True, text=True,
                         env={**os.environ}, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _signed_in(chromium: Any, service: Service, email: str, **context: Any) -> Any:
    page = chromium.new_context(**context).new_page()
    page.goto(_link(service, email))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{service.url}/tasks")
    return page


def _ended_tasks(service: Service, email: str, *bodies: dict[str, Any]
                 ) -> list[dict[str, Any]]:
    """``email`` made a user, and a task of theirs started by the API for each of
    ``bodies`` and waited for: each as the API shows it ended."""
    import httpx

    from conftest import wait_done

    admin("users", "add", email)
    token = admin("tokens", "create", email).strip()
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"},
                      timeout=60) as client:
        ended = []
        for body in bodies:
            answer = client.post("/v1/tasks", json=body)
            assert answer.status_code == 201, answer.text
            ended.append(wait_done(client, answer.json()["id"]))
        return ended


def _shoot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _axe(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']}: {v['help']}" for v in results.response["violations"]
            if v.get("impact") in ("serious", "critical")]


def test_a_task_from_the_form_runs_live_and_its_output_is_text(
        chromium: Any, service: Service) -> None:
    admin("users", "add", "alice@example.com")
    page = _signed_in(chromium, service, "alice@example.com")
    assert page.get_by_text("alice@example.com").is_visible()
    assert _axe(page) == []
    page.get_by_role("link", name="New task").first.click()
    page.get_by_label("A shell command").check()
    page.get_by_role("textbox", name="Command").fill(
        "echo '<script>document.title=\"owned\"</script><b>bold</b>'; "
        "for i in 1 2 3; do echo line-$i; sleep 1; done")
    assert _axe(page) == []
    page.get_by_role("button", name="Start the task").click()
    page.wait_for_url(f"{service.url}/tasks/t-*")
    # Live: the first line is on the page while the task still runs.
    page.locator(".log .line", has_text="line-1").wait_for(timeout=30_000)
    assert page.locator("#status").inner_text() in ("running", "pending")
    page.locator("#status.succeeded").wait_for(timeout=60_000)
    assert not page.get_by_role("button", name="Cancel").is_visible()  # nothing to cancel
    steps = page.locator("#timeline .badge").all_inner_texts()
    assert steps[0] == "queued" and steps[-1] == "succeeded" and "running" in steps
    log = page.locator("#log")
    assert "<script>document.title=\"owned\"</script><b>bold</b>" in log.inner_text()
    assert log.locator("script, b").count() == 0 and page.title() != "owned"
    assert [line for line in log.inner_text().splitlines() if line.startswith("line-")] == [
        "line-1", "line-2", "line-3"]  # each once, in order
    page.locator("#outcome").wait_for()
    assert _axe(page) == []
    _shoot(page, "task-light-wide")
    page.goto(f"{service.url}/tasks")
    page.locator("#task-rows tr .badge.succeeded").wait_for()
    _shoot(page, "tasks-light-wide")
    page.context.close()


def test_cancel_and_another_users_task_is_a_404(chromium: Any, service: Service) -> None:
    admin("users", "add", "alice@example.com")
    admin("users", "add", "bob@example.com")
    page = _signed_in(chromium, service, "alice@example.com",
                      color_scheme="dark", viewport={"width": 375, "height": 800})
    page.goto(f"{service.url}/tasks/new")
    page.get_by_label("A shell command").check()
    page.get_by_role("textbox", name="Command").fill("echo started; sleep 300")
    page.get_by_role("button", name="Start the task").click()
    page.wait_for_url(f"{service.url}/tasks/t-*")
    task_url = page.url
    page.locator(".log .line", has_text="started").wait_for(timeout=30_000)
    _shoot(page, "task-dark-narrow")
    page.get_by_role("button", name="Cancel").click()
    page.locator("#status.stopped").wait_for(timeout=60_000)
    bob = _signed_in(chromium, service, "bob@example.com")
    answer = bob.goto(task_url)
    assert answer is not None and answer.status == 404
    assert "No such task" in bob.content()
    bob.context.close()
    page.context.close()


def test_the_diff_file_by_file_highlighted_and_a_large_file_closed(
        chromium: Any, service: Service, tmp_path: Path) -> None:
    from git_repos import bare_repository
    from git_server import GitServer

    bare_repository(tmp_path / "served" / "app.git",
                    {"app.py": "def add(a, b):\n    return a - b\n", "notes.txt": "old\n"})
    command = ("printf 'def add(a, b):\\n    \"<script>document.title=1</script>\"\\n"
               "    return a + b\\n' > app.py && seq 1 3000 > big.txt && git rm -q notes.txt")
    with GitServer(tmp_path / "served", None) as git:
        [task] = _ended_tasks(service, "alice@example.com",
                              {"command": command, "repo": f"{git.url}/app.git"})
    assert task["status"] == "SUCCEEDED"
    page = _signed_in(chromium, service, "alice@example.com")
    page.goto(f"{service.url}/tasks/{task['id']}")
    page.locator("#outcome").wait_for()
    files = page.locator("#diff details.file-diff")
    assert files.count() == 3
    app = files.filter(has_text="app.py")
    assert app.get_attribute("open") is not None
    assert app.locator("tr.d.add .src .k", has_text="def").count() == 0  # "def" is context
    assert app.locator("tr.d .src .k", has_text="def").count() == 1  # a keyword, coloured
    assert app.locator("tr.d.del .src", has_text="return a - b").count() == 1
    added = app.locator("tr.d.add .src", has_text="<script>document.title=1</script>")
    assert added.count() == 1 and app.locator("script").count() == 0
    assert page.title() != "1"
    assert files.filter(has_text="notes.txt").locator(".badge.deleted").count() == 1
    big = files.filter(has_text="big.txt")
    assert big.get_attribute("open") is None and big.locator("tr").count() == 0
    assert "3,000 lines" in big.locator("summary").inner_text()
    assert _axe(page) == []
    _shoot(page, "diff-light-wide")
    page.emulate_media(color_scheme="dark")
    page.set_viewport_size({"width": 375, "height": 800})
    assert _axe(page) == []  # token colours readable on dark added and removed lines
    _shoot(page, "diff-dark-narrow")
    big.locator("summary").click()
    big.locator("tr.d.add .num", has_text="3000").wait_for()
    assert big.locator("tr.d.add").count() == 3000
    page.context.close()


def test_a_task_started_and_followed_by_keyboard_alone_at_375_px(
        chromium: Any, service: Service) -> None:
    admin("users", "add", "alice@example.com")
    page = _signed_in(chromium, service, "alice@example.com",
                      viewport={"width": 375, "height": 800})
    page.goto(f"{service.url}/tasks/new")
    # No sideways scrolling of the page itself at 375 px.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
    focused = "() => { const e = document.activeElement; return [e.tagName, e.id, " \
              "e.getAttribute('value') || e.textContent.trim(), " \
              "getComputedStyle(e).outlineStyle]; }"
    page.keyboard.press("Tab")
    assert page.evaluate(focused)[2] == "Skip to content"
    page.keyboard.press("Enter")  # past the header, to the form
    seen = []
    for _ in range(10):
        page.keyboard.press("Tab")
        seen.append(page.evaluate(focused))
        if seen[-1][:3] == ["INPUT", "", "prompt"]:
            break
    assert seen[-1][:3] == ["INPUT", "", "prompt"], seen
    assert all(style != "none" for *_, style in seen)  # where the focus is, is seen
    page.keyboard.press("ArrowDown")  # the radio group: a shell command
    page.keyboard.press("Tab")
    assert page.evaluate(focused)[1] == "f-command"
    page.keyboard.type("echo typed-by-keyboard; sleep 300")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{service.url}/tasks/t-*")
    page.locator(".log .line", has_text="typed-by-keyboard").wait_for(timeout=30_000)
    for _ in range(30):  # to the Cancel button, by Tab alone
        page.keyboard.press("Tab")
        if page.evaluate(focused)[2] == "Cancel":
            break
    page.keyboard.press("Enter")
    page.locator("#status.stopped").wait_for(timeout=60_000)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
    page.context.close()


def test_a_field_the_service_refuses_is_named_beside_it(chromium: Any,
                                                        service: Service) -> None:
    admin("users", "add", "alice@example.com")
    page = _signed_in(chromium, service, "alice@example.com")
    page.goto(f"{service.url}/tasks/new")
    page.get_by_role("textbox", name="Prompt").fill("tidy up")
    page.get_by_label("Repository URL").fill("/etc")
    page.get_by_role("button", name="Start the task").click()
    error = page.locator("#e-repo")
    error.wait_for()
    assert "https://" in error.inner_text()
    assert page.url == f"{service.url}/tasks/new"
    _shoot(page, "new-light-wide")
    page.context.close()


def test_a_login_link_signs_in_once(chromium: Any, service: Service) -> None:
    admin("users", "add", "alice@example.com")
    link = _link(service, "alice@example.com")
    first = chromium.new_context().new_page()
    first.goto(link)
    first.get_by_role("button", name="Sign in").click()
    first.wait_for_url(f"{service.url}/tasks")
    again = chromium.new_context().new_page()
    again.goto(link)
    again.get_by_role("button", name="Sign in").click()
    # the click submits a form: wait for the answer's page, not the one leaving
    again.get_by_text("Link not valid").first.wait_for()
    for page in (first, again):
        page.context.close()


def test_settings_make_and_revoke_a_token_and_keep_secrets_unseen(
        chromium: Any, service: Service) -> None:
    import httpx

    admin("users", "add", "alice@example.com")
    page = _signed_in(chromium, service, "alice@example.com")
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("textbox", name="Name").first.fill("from the dashboard")
    page.get_by_role("button", name="Create a token").click()
    shown = page.locator("#token-value")
    shown.wait_for()
    token = shown.inner_text()
    assert token.startswith("rci_")
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as client:
        assert client.get("/v1/me").status_code == 200
        page.get_by_role("button", name="Revoke from the dashboard").click()
        page.locator("#token-rows", has_text="revoked").wait_for()
        assert client.get("/v1/me").status_code == 401  # refused once revoked
    page.locator("#f-secret-name").fill("DEPLOY_KEY")
    page.locator("#f-secret-value").fill("s3cret-value-42")
    page.get_by_role("button", name="Save the secret").click()
    page.locator("#secret-rows", has_text="DEPLOY_KEY").wait_for()
    page.reload()
    page.locator("#secret-rows", has_text="DEPLOY_KEY").wait_for()
    assert "s3cret-value-42" not in page.content()
    assert _axe(page) == []
    _shoot(page, "settings-light-wide")
    page.get_by_role("button", name="Delete DEPLOY_KEY").click()
    page.locator("#secret-rows", has_text="No secrets yet").wait_for()
    page.context.close()


def test_usage_counts_this_months_executions(chromium: Any, service: Service) -> None:
    _ended_tasks(service, "alice@example.com",
                 {"command": "true", "repo": "https://example.com/none.git"},
                 {"command": "echo counted"})
    page = _signed_in(chromium, service, "alice@example.com", color_scheme="dark")
    page.get_by_role("link", name="Usage").click()
    page.locator("#u-tasks", has_text="2").wait_for()
    assert page.locator("#repo-rows tr").count() >= 1
    assert _axe(page) == []
    _shoot(page, "usage-dark-wide")
    page.context.close()


def test_the_sign_in_and_device_pages_pass_axe(chromium: Any, service: Service) -> None:
    import httpx

    admin("users", "add", "alice@example.com")
    anonymous = chromium.new_context().new_page()
    anonymous.goto(f"{service.url}/tasks")
    assert anonymous.url.startswith(f"{service.url}/login")
    assert _axe(anonymous) == []
    anonymous.context.close()
    code = httpx.post(f"{service.url}/device/code", timeout=30).json()
    page = _signed_in(chromium, service, "alice@example.com",
                      viewport={"width": 375, "height": 700})
    page.goto(code["verification_uri_complete"])
    assert code["user_code"] in page.content()
    assert _axe(page) == []
    _shoot(page, "device-light-narrow")
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("Approved").first.wait_for()
    page.context.close()


def test_a_50000_line_log_keeps_the_page_responsive(chromium: Any, service: Service) -> None:
    import time

    [task] = _ended_tasks(service, "alice@example.com", {"command": "seq 1 50000"})
    page = _signed_in(chromium, service, "alice@example.com")
    began = time.monotonic()
    page.goto(f"{service.url}/tasks/{task['id']}")
    page.locator("#status.succeeded").wait_for(timeout=120_000)
    page.locator(".log .line", has_text="50000").wait_for(timeout=120_000)
    took = time.monotonic() - began
    # The page holds a bounded number of lines (how long it took is printed, not
    # asserted: speed is for benchmarks).
    assert page.evaluate("() => document.querySelectorAll('#log .line').length") <= 5000
    assert "of 50002 lines" in page.locator("#log-note").inner_text()
    print(f"50,000 lines shown in {took:.1f} s")
    page.context.close()


def test_admin_sees_users_and_the_deployment_others_get_a_404(
        chromium: Any, service: Service) -> None:
    import httpx

    admin("users", "add", "root@example.com", "--admin")
    admin("users", "add", "alice@example.com")
    alice_token = admin("tokens", "create", "alice@example.com").strip()
    with httpx.Client(base_url=service.url, timeout=30,
                      headers={"Authorization": f"Bearer {alice_token}"}) as alice:
        assert alice.get("/v1/admin/overview").status_code == 403
    page = _signed_in(chromium, service, "root@example.com")
    page.get_by_role("link", name="Admin").click()
    page.locator("#user-rows tr", has_text="alice@example.com").wait_for()
    row = page.locator("#user-rows tr", has_text="alice@example.com").locator("td")
    assert row.nth(3).inner_text() == "free" and row.nth(5).inner_text() == "$0.00"
    page.locator("#deployment dd", has_text="on this machine").wait_for()
    page.locator("#deployment dt", has_text="Deployed on ECS, a month").wait_for()
    page.locator("#deployment dt", has_text="Tasks not ended").wait_for()
    assert "on-demand" in page.locator("#deployment").inner_text() or \
        "spot" in page.locator("#deployment").inner_text()
    assert _axe(page) == []
    _shoot(page, "admin-light-wide")
    other = _signed_in(chromium, service, "alice@example.com")
    assert other.get_by_role("link", name="Admin").count() == 0
    answer = other.goto(f"{service.url}/admin")
    assert answer is not None and answer.status == 404
    other.context.close()
    page.context.close()


def test_sign_in_with_github_in_the_browser(chromium: Any, site: Service, idp: Any) -> None:
    """Through the loopback fake of GitHub: real redirects, state and PKCE checked."""
    page = chromium.new_context().new_page()
    page.goto(f"{site.url}/tasks/new")
    assert page.url.startswith(f"{site.url}/login")
    assert page.get_by_role("link", name="Sign in with Google").is_visible()
    assert _axe(page) == []
    _shoot(page, "login-light-wide")
    page.get_by_role("link", name="Sign in with GitHub").click()
    page.wait_for_url(f"{site.url}/tasks/new")  # back where the person was going
    assert page.get_by_text("alice@example.com").is_visible()
    assert dict(idp.seen)["github/authorize"]["code_challenge_method"] == "S256"
    page.context.close()
