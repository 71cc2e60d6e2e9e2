"""A clinician at the dashboard, in headless Chromium, on the real stack."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from alerts.models import Alert
from patients.models import CareTeam
from patients.services import issue_clinician_token
from tests.conftest import PASSWORD, make_staff
from tests.integration.stack import wait_until
from tests.integration.test_ingest_stack import upload
from tests.test_telemetry_ingest import batch, iso, now, obs

from .conftest import LAPTOP
from .scene import add_ward, synthetic_ecg

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]
TABLET = {"width": 820, "height": 1180}


def sign_in(page, username: str = "clinician") -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="My patients")).to_be_visible()


def wait_for_live_alerts(page) -> None:
    expect(page.locator("body")).to_have_attribute("data-alert-stream", "live")


def colleague(clinician):
    """A second clinician of the same care team."""
    user = make_staff(clinician.organisation, "colleague")
    CareTeam.objects.get(members=clinician).members.add(user)
    return user


def slow_heart(t=None) -> list[dict]:
    """35/min for 12 s: past the 10 s persistence of the high-priority limit."""
    t = t or now()
    return [
        obs("8867-4", 35, "/min", t - timedelta(seconds=12)),
        obs("8867-4", 35, "/min", t),
    ]


def alert_card(page, title: str):
    return page.locator("#alert-list li.alert-card", has_text=title)


def test_a_clinician_signs_in_and_sees_the_sickest_patient_first(
    open_page, screenshot, clinician, other_clinician
):
    add_ward(CareTeam.objects.get(members=clinician))
    page = open_page()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/"))
    page.get_by_label("Username").fill("clinician")
    screenshot(page, "sign-in")
    sign_in(page)
    names = page.locator("#ward-rows .patient-link").all_inner_texts()
    scores = [
        int(s) if s.strip("+").isdigit() else -1
        for s in page.locator(
            "#ward-rows td[data-label=NEWS2] strong"
        ).all_inner_texts()
    ]
    assert names[0] == "HUGHES, Margaret"
    assert scores[: len(scores) - 1] == sorted(scores[:-1], reverse=True)
    assert "MRN-2" not in page.content()  # another team's patient
    expect(page.locator("#ward-rows tr", has_text="BRENNAN")).to_contain_text(
        "no recent data"
    )
    page.get_by_label("Search").fill("reid")
    expect(page.locator("#ward-rows tr.ward-row:visible")).to_have_count(1)
    page.get_by_label("Search").fill("")
    page.get_by_label("Search").blur()
    wait_for_live_alerts(page)
    screenshot(page, "patient-list")
    page.set_viewport_size(TABLET)
    screenshot(page, "patient-list-tablet")
    page.set_viewport_size(LAPTOP)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_an_abnormal_upload_raises_a_live_alert_that_a_colleague_sees_acknowledged(
    open_page, screenshot, browser_stack, clinician, device
):
    colleague(clinician)
    add_ward(CareTeam.objects.get(members=clinician))
    mine, theirs = open_page(), open_page()
    sign_in(mine)
    sign_in(theirs, "colleague")
    wait_for_live_alerts(mine)
    wait_for_live_alerts(theirs)
    response = upload(
        browser_stack, device.token, batch(observations=slow_heart(), ecg=[])
    )
    assert response.status_code == 201, response.text
    card = alert_card(mine, "Heart rate low")
    expect(card).to_be_visible()
    expect(card).to_have_class(re.compile(r"prio-high.*state-active"))
    assert 1.4 <= flash_hz(mine, "Heart rate low") <= 2.8
    expect(mine.locator("#alert-live-assertive")).to_contain_text(
        "High priority alert: Heart rate low"
    )
    mine.locator("h1").click()  # a gesture lets the browser play the alarm
    expect(mine.locator("body")).to_have_attribute("data-alarm-sound", "sounding")
    expect(mine.locator("#ward-rows tr").first).to_contain_text("LOVELACE")
    screenshot(mine, "alert-panel")
    card.get_by_role("button", name="Acknowledge").click()
    expect(alert_card(theirs, "Heart rate low")).to_contain_text(
        "Acknowledged by clinician"
    )
    expect(alert_card(theirs, "Heart rate low")).to_have_class(
        re.compile(r"state-acknowledged")
    )
    expect(mine.locator("body")).to_have_attribute("data-alarm-sound", "quiet")


def raise_a_fever(browser_stack, device) -> Alert:
    """Upload a fever and wait for the worker to raise its alert."""
    body = batch(observations=[obs("8310-5", 40.1, "Cel")], ecg=[])
    assert upload(browser_stack, device.token, body).status_code == 201
    wait_until(
        lambda: Alert.objects.filter(kind="temperature_high").exists(),
        30,
        "the worker raised no alert",
    )
    return Alert.objects.get(kind="temperature_high")


def test_an_alert_raised_while_the_connection_is_down_appears_after_catch_up(
    open_page, browser_stack, clinician, device
):
    page = open_page()
    link = AlertSocketSwitch()
    page.route_web_socket(re.compile(r".*/ws/alerts/$"), link.handle)
    sign_in(page)
    wait_for_live_alerts(page)
    link.cut()
    expect(page.locator("#conn-banner")).to_contain_text("Connection lost")
    raise_a_fever(browser_stack, device)
    page.wait_for_timeout(1000)
    expect(alert_card(page, "Temperature high")).to_have_count(0)
    link.restore()
    expect(alert_card(page, "Temperature high")).to_be_visible()
    expect(page.locator("#conn-banner")).to_contain_text("caught up")
    expect(page.locator("#conn-banner")).to_be_hidden(timeout=10_000)


def test_an_alert_push_lost_on_the_way_appears_at_the_next_heartbeat(
    open_page, browser_stack, clinician, device
):
    """The server's channel layer drops pushes to a clinician's full channel (seen
    in the alert bench at 1,000 devices). The socket stays up, so no reconnect
    catches up: the pong's max_seq does, within one heartbeat (15 s)."""
    page = open_page()
    dropper = AlertPushDropper()
    page.route_web_socket(re.compile(r".*/ws/alerts/$"), dropper.handle)
    sign_in(page)
    wait_for_live_alerts(page)
    raised = raise_a_fever(browser_stack, device)
    expect(alert_card(page, "Temperature high")).to_be_visible(timeout=25_000)
    assert dropper.dropped_alerts == [raised.pk], "the push was not dropped"
    expect(page.locator("#conn-banner")).to_be_hidden()


def test_the_patient_page_shows_live_vitals_and_sweeps_the_ecg(
    open_page, screenshot, browser_stack, clinician
):
    hughes = add_ward(CareTeam.objects.get(members=clinician))["Hughes"]
    page = open_page()
    sign_in(page)
    page.get_by_role("link", name="HUGHES, Margaret").click()
    expect(page.locator("#live-state")).to_have_text("live")
    expect(page.locator("#news2-total")).to_have_text(re.compile(r"\d+"))
    expect(page.locator("#trend-charts .uplot")).to_have_count(6)
    t = now()
    vitals = batch(
        observations=[obs("8867-4", 126, "/min", t), obs("2708-6", 90, "%", t)],
        ecg=[],
    )
    assert upload(browser_stack, hughes.hub_token, vitals).status_code == 201
    expect(page.locator('.tile[data-vital="hr"] .tvalue')).to_have_text("126")
    expect(page.locator('.tile[data-vital="spo2"] .tvalue')).to_have_text("90")
    ecg = batch(observations=[], ecg=[ecg_segment(t, bpm=120)])
    assert upload(browser_stack, hughes.patch_token, ecg).status_code == 201
    features = page.locator("#ecg-features")
    # Generous: the shared CI machine can be slow (the worker loads NeuroKit2 at
    # start-up since session 8; before, the first ECG waited 2-5 s for it).
    expect(features.locator('dd[data-feature="heart_rate_bpm"]')).to_contain_text(
        re.compile(r"1[12]\d /min"), timeout=20_000
    )
    expect(page.locator("#ecg-status")).to_contain_text("Live from ECG-11")
    # The pen sweeps across the strip at paper speed: wait for part of a trace.
    wait_until(lambda: trace_pixels(page) > 200, 20, "no ECG trace was drawn")
    screenshot(page, "patient-page")
    screenshot(page, "patient-page-full", full_page=True)
    page.get_by_label("New note").fill("Rate up after exercise; recheck at 14:00.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("ol.notes")).to_contain_text("recheck at 14:00")


def test_another_teams_patient_page_is_not_found_in_the_browser(
    open_page, clinician, other_patient
):
    page = open_page()
    sign_in(page)
    response = page.goto(f"/patients/{other_patient.pk}/")
    assert response.status == 404


def ecg_segment(t, bpm: float) -> dict:
    return {
        "lead": "II",
        "fs_hz": 250,
        "start": iso(t - timedelta(seconds=10)),
        "unit": "uV",
        "samples": synthetic_ecg(bpm=bpm),
    }


# --- helpers -------------------------------------------------------------------------


def flash_hz(page, title: str) -> float:
    """How often the alert's card flashes (one atomic look: cards re-render)."""
    duration = page.evaluate(
        """title => {
          const card = [...document.querySelectorAll('#alert-list li.alert-card')]
            .find(li => li.textContent.includes(title));
          return getComputedStyle(card).animationDuration;
        }""",
        title,
    )
    return 1 / float(duration.rstrip("s"))


def trace_pixels(page) -> int:
    """Bright green pixels on the ECG canvas: the pen has drawn."""
    return page.evaluate(
        """() => {
          const c = document.getElementById('ecg-strip');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i + 1] > 200 && d[i] < 150) n++;
          return n;
        }"""
    )


class AlertPushDropper:
    """Stands between the page and /ws/alerts/: passes everything through but the
    alert events, which it drops, as a full channel on the server does."""

    def __init__(self) -> None:
        self.dropped_alerts: list[int] = []

    def handle(self, route) -> None:
        server = route.connect_to_server()

        def to_page(message) -> None:
            data = json.loads(message)
            if data.get("type") == "alert":
                self.dropped_alerts.append(data["alert"]["id"])
            else:
                route.send(message)

        server.on_message(to_page)


class AlertSocketSwitch:
    """Stands between the page and /ws/alerts/: passes it through, or cuts it and
    refuses reconnections until restored."""

    def __init__(self) -> None:
        self.blocked = False
        self.routes: list = []

    def handle(self, route) -> None:
        if self.blocked:
            route.close(code=4000, reason="link down (test)")
            return
        route.connect_to_server()
        self.routes.append(route)

    def cut(self) -> None:
        self.blocked = True
        for route in self.routes:
            route.close(code=4000, reason="link down (test)")
        self.routes.clear()

    def restore(self) -> None:
        self.blocked = False


def test_keyboard_focus_stays_on_acknowledge_while_the_alert_panel_redraws(
    open_page, browser_stack, clinician, device
):
    """Alerts arriving above a card, and an event rebuilding the focused card,
    leave the focus on the same Acknowledge button: Enter acknowledges that alert
    and does not open the patient link (the redraw used to move focus there).
    Then focus goes on to the next alert waiting for acknowledgement."""
    page = open_page()
    sign_in(page)
    wait_for_live_alerts(page)
    fever = batch(observations=[obs("8310-5", 40.1, "Cel")], ecg=[])
    assert upload(browser_stack, device.token, fever).status_code == 201
    card = alert_card(page, "Temperature high")
    acknowledge = card.get_by_role("button", name="Acknowledge")
    acknowledge.focus()
    slow = batch(observations=slow_heart(), ecg=[])
    assert upload(browser_stack, device.token, slow).status_code == 201
    expect(page.locator("#alert-list li.alert-card").first).to_contain_text(
        "Heart rate low"
    )
    expect(acknowledge).to_be_focused()
    # A colleague's comment is a new event for the focused card: it is rebuilt.
    http = browser_stack.session()
    token = issue_clinician_token(user=colleague(clinician))
    http.headers["Authorization"] = f"Token {token}"
    alert = Alert.objects.get(kind="temperature_high")
    url = f"{browser_stack.base_url}/api/v1/alerts/{alert.pk}/comments/"
    answer = http.post(url, json={"text": "Seen"}, timeout=10)
    assert answer.status_code == 201, answer.text
    expect(card).to_have_attribute("data-seq", str(answer.json()["seq"]))
    expect(card.get_by_role("button", name="Acknowledge")).to_be_focused()
    page.keyboard.press("Enter")
    expect(card).to_contain_text("Acknowledged by clinician")
    expect(page.get_by_role("heading", name="My patients")).to_be_visible()
    # On to the next alert waiting for acknowledgement, by keyboard alone.
    waiting = alert_card(page, "Heart rate low")
    expect(waiting.get_by_role("button", name="Acknowledge")).to_be_focused()
    page.keyboard.press("Enter")
    expect(waiting).to_contain_text("Acknowledged by clinician")
