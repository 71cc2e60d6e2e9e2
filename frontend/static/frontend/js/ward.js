// The patient list: search and filters in the page, rows re-fetched from the
// server (one renderer) every 30 s and soon after any alert event.

import { debounce, getHTML, refreshAges } from "./util.js";

const REFRESH_MS = 30000;

const table = document.getElementById("ward-table");
const rows = document.getElementById("ward-rows");
const search = document.getElementById("ward-search");
const filter = document.getElementById("ward-filter");
const summary = document.getElementById("ward-summary");
// Enter in the search box filters; it never submits (and reloads) the page.
document.getElementById("ward-filters").addEventListener("submit", (event) => {
  event.preventDefault();
});

const FILTERS = {
  all: () => true,
  alerts: (row) => Number(row.dataset.alerts) > 0,
  news2: (row) => Number(row.dataset.news2) >= 5,
  devices: (row) => row.dataset.deviceProblem === "1",
  adherence: (row) => row.dataset.adherent === "0",
};

function applyFilters() {
  const words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const keep = FILTERS[filter.value] ?? FILTERS.all;
  let shown = 0;
  let total = 0;
  let alerting = 0;
  for (const row of rows.querySelectorAll("tr.ward-row")) {
    total += 1;
    if (Number(row.dataset.alerts) > 0) alerting += 1;
    const match = keep(row) && words.every((w) => row.dataset.search.includes(w));
    row.hidden = !match;
    if (match) shown += 1;
  }
  const alerts = alerting ? ` · ${alerting} with active alerts` : "";
  summary.textContent = shown === total
    ? `${total} patients, most urgent first${alerts}`
    : `Showing ${shown} of ${total} patients${alerts}`;
}

async function refresh() {
  try {
    const html = await getHTML(table.dataset.rowsUrl);
    const focused = document.activeElement?.closest?.("tr.ward-row")?.dataset.patientId;
    rows.innerHTML = html;
    if (focused) rows.querySelector(`tr[data-patient-id="${focused}"] a`)?.focus();
    refreshAges(rows);
    applyFilters();
  } catch (error) {
    console.warn("ward refresh", error);
  }
}

search.addEventListener("input", applyFilters);
filter.addEventListener("change", applyFilters);
document.addEventListener("rpm:alert", debounce(refresh, 1500));
setInterval(refresh, REFRESH_MS);
refreshAges(rows);
applyFilters();
