// The alert panel on every page: open alerts of the clinician's patients, live
// over /ws/alerts/, caught up over GET /api/v1/alerts/?after_seq=N after any gap:
// a reconnect, or a pong whose max_seq is past what the panel has caught up to
// (a push the server's channel layer dropped under a burst never arrives).

import { LiveSocket } from "./socket.js";
import { element, getJSON, refreshAges, request } from "./util.js";
import { AlarmSound } from "./sound.js";

const RANK = { high: 0, medium: 1, low: 2 };
const PRIORITY_LABEL = { high: "High", medium: "Medium", low: "Low" };

export class AlertPanel {
  constructor(root) {
    this.body = document.body.dataset;
    this.list = root.querySelector("#alert-list");
    this.empty = root.querySelector("#alert-empty");
    this.count = root.querySelector("#alert-count");
    this.assertive = root.querySelector("#alert-live-assertive");
    this.polite = root.querySelector("#alert-live-polite");
    this.banner = document.getElementById("conn-banner");
    this.alerts = new Map(); // id → the alert as of its latest event (snapshot)
    this.seen = new Map(); // id → the newest event number applied (resolved ones too)
    this.cards = new Map(); // id → { key, li }: a card is rebuilt only when it changed
    // Every alert changed up to this event number is known: the watermark of the
    // last load or catch-up. Pushed events do not move it (one dropped before
    // them would then be skipped by the next catch-up).
    this.syncedSeq = 0;
    this.catchingUp = false;
    this.ready = false; // false while (re)syncing: socket events wait in the queue
    this.queue = [];
    this.patients = {};
    this.everConnected = false;
    this.sound = new AlarmSound(root.querySelector("#sound-toggle"), root.querySelector("#sound-hint"));
    this.sound.needed = () => this.activeHigh();
    this.list.addEventListener("click", (event) => this.clicked(event));
    this.setupToggle(root.querySelector("#panel-toggle"));
  }

  async start() {
    await this.loadDirectory();
    this.socket = new LiveSocket(this.body.alertsWs, {
      onMessage: (message) => this.received(message),
      onDown: () => this.down(),
      onPong: (message) => this.ponged(message),
    });
    this.socket.start();
  }

  async loadDirectory() {
    try {
      this.patients = await getJSON(this.body.directoryUrl);
      this.directoryAt = Date.now();
    } catch (error) {
      console.warn("patient directory", error);
    }
  }

  received(message) {
    if (message.type === "hello") {
      this.resync();
    } else if (message.type === "alert") {
      if (this.ready) this.apply(message);
      else this.queue.push(message);
    }
  }

  down() {
    this.ready = false;
    document.body.dataset.alertStream = "down";
    this.showBanner("Connection lost — reconnecting. New alerts will appear when the connection is back.", "down");
  }

  async resync() {
    this.ready = false;
    try {
      const changed = this.everConnected ? await this.catchUp() : await this.loadOpen();
      this.ready = true;
      for (const message of this.queue.splice(0)) this.apply(message);
      this.render();
      document.body.dataset.alertStream = "live";
      if (this.everConnected) {
        this.showBanner(`Reconnected. ${changed} alert change${changed === 1 ? "" : "s"} caught up.`, "up");
        setTimeout(() => this.hideBanner("up"), 4000);
      } else {
        this.hideBanner();
      }
      this.everConnected = true;
    } catch (error) {
      console.warn("alert catch-up failed", error);
      this.socket.ws?.close(4001, "catch-up failed");
    }
  }

  async loadOpen() {
    const data = await getJSON(this.body.alertsUrl);
    this.alerts.clear();
    for (const alert of data.results) {
      this.alerts.set(alert.id, alert);
      this.seen.set(alert.id, alert.seq);
    }
    this.syncedSeq = Math.max(this.syncedSeq, data.max_seq);
    return data.results.length;
  }

  async catchUp() {
    let changed = 0;
    let after = this.syncedSeq;
    for (;;) {
      const data = await getJSON(`${this.body.alertsUrl}?after_seq=${after}`);
      for (const alert of data.results) {
        const news = this.apply({ type: "alert", event: "caught-up", seq: alert.seq, alert }, { quiet: false });
        if (news) changed += 1;
        after = Math.max(after, alert.seq);
      }
      if (!data.more) {
        this.syncedSeq = Math.max(this.syncedSeq, after, data.max_seq);
        return changed;
      }
    }
  }

  async ponged(message) {
    // Numbered past our watermark: something changed since the last catch-up,
    // most likely what the socket already brought; ask, in case it did not.
    if (!this.ready || this.catchingUp || !(message.max_seq > this.syncedSeq)) return;
    this.catchingUp = true;
    try {
      await this.catchUp(); // apply() redraws what changed
    } catch (error) {
      console.warn("alert catch-up failed", error);
    } finally {
      this.catchingUp = false;
    }
  }

  // Returns whether the alert was news (not already known at this event).
  apply(message, { quiet = false } = {}) {
    const alert = message.alert;
    const known = this.alerts.get(alert.id);
    if ((this.seen.get(alert.id) ?? 0) >= alert.seq) return false;
    this.seen.set(alert.id, alert.seq);
    if (alert.state === "resolved") this.alerts.delete(alert.id);
    else this.alerts.set(alert.id, alert);
    const isNew = !known && alert.state === "active";
    if (!quiet && (isNew || message.event === "worsened")) this.announce(alert);
    if (alert.patient_id && !(alert.patient_id in this.patients)) this.refreshDirectory();
    document.dispatchEvent(new CustomEvent("rpm:alert", { detail: message }));
    if (this.ready) this.render();
    return true;
  }

  async refreshDirectory() {
    if (this.directoryAt && Date.now() - this.directoryAt < 30000) return;
    await this.loadDirectory();
    this.render();
  }

  announce(alert) {
    const who = this.patientName(alert);
    const text = `${PRIORITY_LABEL[alert.priority]} priority alert: ${alert.title}${who ? ` — ${who}` : ""}. ${alert.message}`;
    const region = alert.priority === "high" ? this.assertive : this.polite;
    region.textContent = "";
    setTimeout(() => { region.textContent = text; }, 50);
    if (alert.priority === "high") this.sound.soon();
  }

  patientName(alert) {
    const p = this.patients[String(alert.patient_id)];
    return p ? `${p.name} (${p.mrn})` : alert.patient_id ? `patient ${alert.patient_id}` : "";
  }

  sorted() {
    return [...this.alerts.values()].sort((a, b) =>
      (a.state === "active" ? 0 : 1) - (b.state === "active" ? 0 : 1)
      || RANK[a.priority] - RANK[b.priority]
      || b.raised_at.localeCompare(a.raised_at));
  }

  activeHigh() {
    return [...this.alerts.values()].some((a) => a.state === "active" && a.priority === "high");
  }

  render() {
    const alerts = this.sorted();
    const focused = document.activeElement;
    const focusedCard = this.list.contains(focused) ? focused.closest("li") : null;
    const focusedControl = focused?.matches?.("button[data-ack]") ? "button[data-ack]" : "a";
    const cards = new Map();
    for (const alert of alerts) {
      // Unchanged cards stay the same nodes: a button half-way through its
      // acknowledgement keeps its state, and focus does not move.
      const key = `${alert.seq}:${this.directoryAt}`;
      const cached = this.cards.get(alert.id);
      cards.set(alert.id, cached?.key === key ? cached : { key, li: this.card(alert) });
    }
    this.cards = cards;
    // Move only the cards out of place, then drop what is gone.
    [...cards.values()].forEach(({ li }, index) => {
      const here = this.list.children[index];
      if (here !== li) this.list.insertBefore(li, here ?? null);
    });
    while (this.list.children.length > cards.size) this.list.lastElementChild.remove();
    if (focusedCard && document.activeElement !== focused) {
      // The focused card moved or was rebuilt: focus the same control of the same
      // alert (the Acknowledge button stays the Acknowledge button, never the
      // patient link next to it), or the card's link if the button has gone.
      const card = cards.get(Number(focusedCard.dataset.alertId))?.li;
      const control = this.list.contains(focused) ? focused : card?.querySelector(focusedControl) ?? card?.querySelector("a");
      control?.focus();
    }
    const active = alerts.filter((a) => a.state === "active").length;
    this.count.textContent = String(active);
    this.count.className = `count${alerts.some((a) => a.state === "active" && a.priority === "high") ? " prio-high" : active ? " prio-medium" : ""}`;
    this.empty.hidden = alerts.length > 0;
    document.title = document.title.replace(/^\(\d+\) /, "");
    if (active) document.title = `(${active}) ${document.title}`;
    refreshAges(this.list);
    this.sound.update();
  }

  card(alert) {
    const patient = this.patients[String(alert.patient_id)];
    const ack = alert.state === "active"
      ? element("button", { type: "button", class: "ack", "data-ack": alert.id, text: "Acknowledge" })
      : element("span", { class: "state", text: `Acknowledged by ${alert.acknowledged_by ?? "someone"}` });
    return element("li", {
      class: `alert-card prio-${alert.priority} state-${alert.state}`,
      "data-alert-id": alert.id,
      "data-seq": alert.seq,
      "data-kind": alert.kind,
    },
    element("div", { class: "alert-main" },
      element("span", { class: "prio-badge", text: PRIORITY_LABEL[alert.priority] }), " ",
      element("strong", { text: alert.title }),
      element("div", { class: "who" }, alert.patient_id
        ? element("a", { href: `/patients/${alert.patient_id}/`, text: patient ? patient.name : `Patient ${alert.patient_id}` })
        : "Security", patient ? ` · ${patient.mrn}` : ""),
      element("p", { text: alert.message }),
      element("span", { class: "sub" }, "raised ",
        element("time", { class: "age", datetime: alert.raised_at }),
        alert.escalation_tier > 0 ? ` · escalated to ${alert.escalated_to}` : "",
        alert.snoozed_until ? " · snoozed" : "",
        alert.condition_cleared_at ? " · condition ended (latched)" : "")),
    element("div", { class: "alert-actions" }, ack));
  }

  async clicked(event) {
    const button = event.target.closest("button[data-ack]");
    if (!button) return;
    const id = Number(button.dataset.ack);
    button.disabled = true;
    button.textContent = "Acknowledging…";
    const response = await request(`${this.body.alertsUrl}${button.dataset.ack}/acknowledge/`, { method: "POST", body: {} });
    if (response.ok) {
      const alert = await response.json();
      this.apply({ type: "alert", event: "acknowledged", seq: alert.seq, alert }, { quiet: true });
      this.render();
      this.focusAfterAcknowledging(id);
      this.polite.textContent = `Acknowledged: ${alert.title}`;
    } else {
      button.disabled = false;
      button.textContent = "Acknowledge";
      this.polite.textContent = "Could not acknowledge the alert; it may have changed. Refreshing.";
      this.catchUp().then(() => this.render());
    }
  }

  focusAfterAcknowledging(id) {
    // The disabled button lost the focus: go on to the next alert waiting for
    // acknowledgement, or stay on this card when none is left. Not when the
    // user has meanwhile moved on to something else on the page.
    const here = document.activeElement;
    if (here && here !== document.body && !this.list.contains(here)) return;
    const next = this.list.querySelector("button[data-ack]:not([disabled])");
    (next ?? this.cards.get(id)?.li.querySelector("a"))?.focus();
  }

  showBanner(text, kind) {
    this.banner.textContent = text;
    this.banner.dataset.kind = kind;
    this.banner.hidden = false;
  }

  hideBanner(kind) {
    if (!kind || this.banner.dataset.kind === kind) this.banner.hidden = true;
  }

  setupToggle(button) {
    button.addEventListener("click", () => {
      const open = button.getAttribute("aria-expanded") === "true";
      button.setAttribute("aria-expanded", String(!open));
      button.textContent = open ? "Show" : "Hide";
      this.list.hidden = open;
      document.body.classList.toggle("panel-collapsed", open);
    });
  }
}
