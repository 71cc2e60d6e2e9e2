"""In headless Chromium on the real stack: the inactivity warning and sign-out
(with Playwright's fake clock, so fifteen minutes pass at once), the admins'
security page drawing a real QKD run, and the Content-Security-Policy enforced
while the admin console and the API docs still work under it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from security.models import QkdLink
from security.services import run_link
from tests.conftest import PASSWORD

from .conftest import LAPTOP
from .test_dashboard import sign_in, wait_for_live_alerts

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def test_an_idle_clinician_is_warned_a_minute_before_and_then_signed_out(
    open_page, clinician
):
    page = open_page()
    page.clock.install()  # before the first page: every timer runs on it
    sign_in(page)
    wait_for_live_alerts(page)  # the page's scripts run: the idle timer started
    warning = page.get_by_role("alertdialog", name="Still there?")
    stay = page.get_by_role("button", name="Stay signed in")
    idle_s = int(page.locator("body").get_attribute("data-idle-timeout"))
    page.clock.fast_forward((idle_s - 50) * 1000)
    expect(warning).to_be_visible()
    expect(stay).to_be_focused()  # Enter keeps the session
    expect(page.locator("#idle-seconds")).to_have_text("50")
    stay.press("Enter")
    expect(warning).to_be_hidden()
    page.clock.fast_forward((idle_s - 30) * 1000)  # the key press reset the count
    expect(warning).to_be_visible()
    page.clock.fast_forward(31 * 1000)
    expect(page.get_by_role("status")).to_contain_text(
        "signed out after a period without activity"
    )
    page.goto("/")
    expect(page.get_by_label("Username")).to_be_visible()  # the session is gone


def test_an_admin_sees_the_links_runs_drawn_on_the_security_page(open_page, admin):
    link = QkdLink.objects.create(
        name="default",
        source_kme_id="kme-a",
        target_kme_id="kme-b",
        distance_km=10,
        pulses_per_run=4_000_000,
    )
    run = run_link(link, seed=7)
    assert not run.aborted
    page = open_page()
    page.goto("/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Security").click()
    expect(page.get_by_role("heading", name="Security", exact=True)).to_be_visible()
    expect(page.locator("#link-status")).to_have_text("Up")
    expect(page.locator(".qkd-table tbody tr").first).to_contain_text(
        f"{run.qber * 100:.2f} %"
    )
    # The run charts (QBER, key rate) and the key rate against distance, drawn.
    expect(page.locator("#qkd-run-charts .uplot")).not_to_have_count(0)
    expect(page.locator("#qkd-distance-chart .uplot")).to_have_count(1)
    expect(page.locator("#qkd-distance-chart canvas")).to_have_count(1)
    # Both theories are drawn: the one this link's keys are bounded by, too.
    legend = page.locator("#qkd-distance-chart .u-legend")
    expect(legend).to_contain_text("theory, infinite decoys")
    expect(legend).to_contain_text("vacuum + weak decoy (this link)")


def test_the_admin_console_and_the_api_docs_run_under_the_policy(
    open_page, admin, patient
):
    """open_page fails the test on any Content-Security-Policy violation."""
    page = open_page()
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto("/admin/patients/patient/")
    page.get_by_role("link", name=patient.mrn).click()  # a form with inlines
    expect(page.get_by_role("heading", name="Change patient")).to_be_visible()
    page.goto("/api/docs/")  # Swagger UI, started by a script file, not inline
    expect(page.locator(".opblock").first).to_be_visible()
    expect(page.get_by_text("/api/v1/telemetry/batches").first).to_be_visible()


def test_an_injected_inline_script_is_refused_and_reported(browser, browser_stack):
    """What the policy is for, and what open_page's watch relies on: Chromium
    refuses inline script and says so on the console."""
    context = browser.new_context(
        base_url=browser_stack.base_url, ignore_https_errors=True, viewport=LAPTOP
    )
    try:
        page = context.new_page()
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.goto("/login/")
        page.evaluate(
            """() => {
                const script = document.createElement("script");
                script.textContent = "window.injected = true";
                document.body.append(script);
            }"""
        )
        page.wait_for_timeout(200)
        assert page.evaluate("() => window.injected") is None
        assert any("Content Security Policy" in text for text in console), console
    finally:
        context.close()
