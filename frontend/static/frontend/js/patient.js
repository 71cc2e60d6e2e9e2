// A patient's page: live tiles, NEWS2 and ECG features over /ws/patients/{id}/,
// the ECG strip fed from the ECG API, trend charts and the alert history.

import { EcgStrip } from "./ecg.js";
import { LiveSocket } from "./socket.js";
import { TrendCharts } from "./trends.js";
import { debounce, element, getHTML, getJSON, refreshAges, request } from "./util.js";

const page = document.getElementById("patient-page");
const data = page.dataset;
const vitals = JSON.parse(document.getElementById("vitals-config").textContent);
const liveState = document.getElementById("live-state");
const ecgStatus = document.getElementById("ecg-status");
const ecgCaption = document.getElementById("ecg-caption");
const LIVE_ECG_MAX_AGE_MS = 120000;

const strip = new EcgStrip(document.getElementById("ecg-strip"));
const trends = new TrendCharts(document.getElementById("trend-charts"), data.trendsUrl);
const seenSegments = new Set();
let latestVitalTime = null;
let connectedBefore = false;

// --- live tiles -------------------------------------------------------------------

function format(vital, value) {
  return typeof value === "number" ? value.toFixed(vital.decimals) : value;
}

function updateTiles(readings) {
  const latest = {};
  for (const r of readings) {
    if (!latest[r.code] || latest[r.code].time < r.time) latest[r.code] = r;
    if (!latestVitalTime || r.time > latestVitalTime) latestVitalTime = r.time;
  }
  for (const vital of vitals) {
    const tile = page.querySelector(`.tile[data-vital="${vital.key}"]`);
    const found = vital.codes.map((c) => latest[c]).filter(Boolean);
    if (!tile || !found.length) continue;
    let text;
    let time;
    if (vital.key === "bp") {
      const [sys, dia] = [latest[vital.codes[0]], latest[vital.codes[1]]];
      if (!sys) continue;
      text = `${sys.value.toFixed(0)}${dia ? `/${dia.value.toFixed(0)}` : ""}`;
      time = sys.time;
    } else {
      const newest = found.sort((a, b) => b.time.localeCompare(a.time))[0];
      text = format(vital, newest.value ?? newest.text);
      time = newest.time;
    }
    tile.querySelector(".tvalue").textContent = text;
    const age = tile.querySelector("time.age");
    age.setAttribute("datetime", time);
    tile.classList.remove("updated");
    void tile.offsetWidth; // restart the highlight animation
    tile.classList.add("updated");
  }
  refreshAges(page);
}

// --- NEWS2 and ECG features ---------------------------------------------------------

const PARAM_LABELS = {
  respiration_rate: "respiration rate", spo2: "SpO₂", air_or_oxygen: "air or oxygen",
  systolic_bp: "systolic BP", pulse: "pulse", consciousness: "consciousness",
  temperature: "temperature",
};

function updateNews2(score) {
  document.getElementById("news2-total").textContent = String(score.total);
  document.getElementById("news2-risk").textContent = `${score.risk} risk`;
  document.getElementById("news2-badge").className = `news2 big band-${score.risk}`;
  const asOf = document.getElementById("news2-asof");
  asOf.replaceChildren("as of ", element("time", { class: "age", datetime: score.as_of }));
  const partial = document.getElementById("news2-partial");
  partial.hidden = !score.partial;
  document.getElementById("news2-missing").textContent =
    score.missing.map((m) => PARAM_LABELS[m] ?? m).join(", ");
  for (const row of document.querySelectorAll(".subscores tr[data-param]")) {
    const points = score.subscores[row.dataset.param];
    const cell = row.querySelector("td");
    cell.textContent = points === undefined ? "not measured" : String(points);
    cell.className = `pts pts-${points === undefined ? "na" : points}`;
  }
  refreshAges(page);
}

const MS_FEATURES = ["sdnn_ms", "rmssd_ms", "pr_ms", "qrs_ms", "qtc_ms"];

function updateFeatures(f) {
  const set = (key, text) => {
    const dd = document.querySelector(`#ecg-features dd[data-feature="${key}"]`);
    if (dd) dd.textContent = text;
  };
  const rhythm = f.rhythm ? f.rhythm.replace(/_/g, " ") : "—";
  set("rhythm", rhythm.charAt(0).toUpperCase() + rhythm.slice(1));
  set("heart_rate_bpm", f.heart_rate_bpm == null ? "—" : `${Math.round(f.heart_rate_bpm)} /min`);
  for (const key of MS_FEATURES) set(key, f[key] == null ? "—" : `${Math.round(f[key])} ms`);
  set("quality", `${f.quality.toFixed(2)}${f.usable ? "" : " (unusable)"}`);
  document.getElementById("ecg-asof").replaceChildren(
    "segment of ", element("time", { class: "age", datetime: f.start }));
  refreshAges(page);
}

// --- ECG strip ----------------------------------------------------------------------

async function loadSegment(id, { live }) {
  if (seenSegments.has(id)) return;
  seenSegments.add(id);
  const segment = await getJSON(`${data.ecgUrl}${id}/`);
  ecgCaption.textContent = `lead ${segment.lead}, 25 mm/s, 10 mm/mV`;
  const started = new Date(segment.start);
  if (live) {
    strip.push(segment.samples, segment.fs_hz);
    ecgStatus.textContent = `Live from ${segment.device_serial}: segment of ${started.toLocaleTimeString()} (${segment.duration_s.toFixed(0)} s), shown as it arrives.`;
  } else {
    strip.showStatic(segment.samples, segment.fs_hz);
    ecgStatus.textContent = `Latest ECG, recorded ${started.toLocaleString()}. The strip sweeps again when new ECG arrives.`;
  }
  page.dataset.ecgSegments = String(seenSegments.size);
}

async function loadLatestEcg() {
  try {
    const list = await getJSON(`${data.ecgUrl}?page_size=3`);
    const segments = list.results.reverse();
    if (!segments.length) {
      ecgStatus.textContent = "No ECG recorded yet.";
      return;
    }
    const newest = segments[segments.length - 1];
    const live = Date.now() - new Date(newest.start).getTime() < LIVE_ECG_MAX_AGE_MS;
    for (const s of live ? segments : [newest]) await loadSegment(s.id, { live });
  } catch (error) {
    ecgStatus.textContent = "Could not load the ECG.";
    console.warn("ecg", error);
  }
}

// --- the live socket ----------------------------------------------------------------

const refreshTrends = debounce(() => trends.reload(), 20000);

function onUpdate(message) {
  if (message.vitals?.length) updateTiles(message.vitals);
  const scores = message.news2 ?? [];
  if (scores.length) updateNews2(scores.reduce((a, b) => (a.as_of > b.as_of ? a : b)));
  const ecg = message.ecg ?? [];
  if (ecg.length) updateFeatures(ecg[ecg.length - 1]);
  for (const e of ecg) loadSegment(e.segment_id, { live: true }).catch((err) => console.warn(err));
  refreshTrends();
}

async function catchUpVitals() {
  if (!latestVitalTime) return;
  const since = encodeURIComponent(latestVitalTime);
  const list = await getJSON(`/api/v1/patients/${data.patientId}/observations/?since=${since}&page_size=200`);
  updateTiles(list.results);
}

const socket = new LiveSocket(data.wsUrl, {
  onMessage: (message) => {
    if (message.type === "hello") {
      liveState.textContent = "live";
      liveState.className = "live-state on";
      if (connectedBefore) catchUpVitals().catch(() => {});
      connectedBefore = true;
    } else if (message.type === "patient.update") {
      onUpdate(message);
    }
  },
  onDown: () => {
    liveState.textContent = "reconnecting…";
    liveState.className = "live-state off";
  },
});

// --- alert history ------------------------------------------------------------------

const history = document.getElementById("patient-alerts");

async function refreshHistory() {
  const typing = history.contains(document.activeElement) && document.activeElement.value;
  if (typing) {
    setTimeout(refreshHistory, 5000);
    return;
  }
  const open = [...history.querySelectorAll("details[open]")].map((d) => d.closest("[data-alert-id]")?.dataset.alertId);
  history.innerHTML = await getHTML(data.alertsUrl);
  for (const id of open) {
    const details = history.querySelector(`[data-alert-id="${id}"] > details[data-events]`);
    if (details) { details.open = true; loadEvents(details); }
  }
  refreshAges(history);
}

const refreshHistorySoon = debounce(() => refreshHistory().catch((e) => console.warn(e)), 500);

async function act(alertId, action, body) {
  const response = await request(`/api/v1/alerts/${alertId}/${action}/`, { method: "POST", body });
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    window.alert(problem.detail ?? `Could not ${action}: HTTP ${response.status}`);
  }
  await refreshHistory();
}

async function loadEvents(details) {
  const id = details.closest("[data-alert-id]").dataset.alertId;
  const events = await getJSON(`/api/v1/alerts/${id}/events/`);
  details.querySelector("ol.events").replaceChildren(...events.map((e) =>
    element("li", {},
      element("time", { datetime: e.at, text: new Date(e.at).toLocaleString() }), " ",
      element("strong", { text: e.type }),
      e.actor ? ` by ${e.actor}` : "", e.note ? `: ${e.note}` : "")));
}

history.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const card = button.closest("[data-alert-id]");
  button.disabled = true;
  if (button.dataset.action === "acknowledge") act(card.dataset.alertId, "acknowledge", {});
  if (button.dataset.action === "snooze") {
    const minutes = Number(card.querySelector("[data-snooze-minutes]").value);
    act(card.dataset.alertId, "snooze", { minutes });
  }
});
history.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-action=comment]");
  if (!form) return;
  event.preventDefault();
  const text = form.elements.text.value.trim();
  if (text) {
    form.elements.text.value = "";
    act(form.closest("[data-alert-id]").dataset.alertId, "comments", { text });
  }
});
history.addEventListener("toggle", (event) => {
  if (event.target.matches("details[data-events]") && event.target.open) loadEvents(event.target);
}, true);
document.addEventListener("rpm:alert", (event) => {
  if (String(event.detail.alert.patient_id) === data.patientId) refreshHistorySoon();
});

// --- start --------------------------------------------------------------------------

const initialTimes = [...page.querySelectorAll(".tile time.age[datetime]")].map((t) => t.getAttribute("datetime"));
latestVitalTime = initialTimes.sort().pop() ?? null;
socket.start();
loadLatestEcg();
trends.start();
