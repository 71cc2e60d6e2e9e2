// The admins' security page: QBER and key rate of the QKD link's recent runs, and
// the key rate against distance (theory, PLOB bound, the runs), with uPlot.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { element, getJSON } from "./util.js";

const AXIS = { stroke: "#b7c0c9", grid: { stroke: "#26303a", width: 1 }, ticks: { stroke: "#26303a" } };
const RED = "#ff4040";
const HEIGHT = 190;

const sci = (v) => (v == null ? "–" : v.toExponential(2));
const pct = (v) => (v == null ? "–" : `${v.toFixed(2)} %`);

// Aborted runs: a dashed red vertical line at their time, on top of the chart.
function abortMarks(times) {
  return (u) => {
    const { ctx } = u;
    const { top, height } = u.bbox;
    ctx.save();
    ctx.strokeStyle = RED;
    ctx.lineWidth = uPlot.pxRatio;
    ctx.setLineDash([4 * uPlot.pxRatio, 3 * uPlot.pxRatio]);
    for (const t of times) {
      const x = Math.round(u.valToPos(t, "x", true));
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
    }
    ctx.restore();
  };
}

// Runs as dots over the distance curves (several runs share one distance, which
// uPlot's aligned data cannot hold, so they are drawn directly).
function runDots(points) {
  return (u) => {
    const { ctx } = u;
    ctx.save();
    for (const [d, rate, aborted] of points) {
      const x = u.valToPos(d, "x", true);
      const y = u.valToPos(rate, "y", true);
      ctx.beginPath();
      ctx.arc(x, y, 3.5 * uPlot.pxRatio, 0, 2 * Math.PI);
      ctx.fillStyle = aborted ? RED : "#f2b84b";
      ctx.fill();
    }
    ctx.restore();
  };
}

class SecurityCharts {
  constructor(page) {
    this.url = page.dataset.dataUrl;
    this.runsRoot = document.getElementById("qkd-run-charts");
    this.distanceRoot = document.getElementById("qkd-distance-chart");
    this.plots = [];
    for (const root of [this.runsRoot, this.distanceRoot]) {
      if (root) new ResizeObserver(() => this.resize()).observe(root);
    }
  }

  async start() {
    try {
      this.draw(await getJSON(this.url));
    } catch (error) {
      for (const root of [this.runsRoot, this.distanceRoot]) {
        root?.replaceChildren(element("p", { class: "hint", text: "Could not load the charts." }));
      }
      console.warn("security", error);
    }
  }

  draw(data) {
    for (const plot of this.plots) plot.destroy();
    this.plots = [];
    const runs = data.runs;
    if (this.runsRoot) {
      this.runsRoot.replaceChildren();
      if (runs.t.length) {
        this.plots.push(this.qber(data), this.keyRate(runs));
      } else {
        this.runsRoot.append(element("p", { class: "hint", text: "No runs yet." }));
      }
    }
    this.distanceRoot.replaceChildren();
    this.plots.push(this.distance(data));
  }

  figure(root, caption) {
    const box = element("figure", { class: "trend" }, element("figcaption", { text: caption }));
    root.append(box);
    return box;
  }

  abortedTimes(runs) {
    return runs.t.filter((_, i) => runs.aborted[i]);
  }

  qber(data) {
    const runs = data.runs;
    const limit = data.qber_abort * 100;
    const aborted = this.abortedTimes(runs);
    const box = this.figure(this.runsRoot,
      `QBER (%) per run; dashed red: aborted runs (${aborted.length})`);
    const qber = runs.qber.map((q) => (q == null ? null : q * 100));
    const opts = {
      width: this.width(this.runsRoot), height: HEIGHT,
      series: [
        {},
        { label: "QBER", stroke: "#6cc6ff", width: 2, points: { show: true, size: 5 }, value: (u, v) => pct(v) },
        { label: "abort threshold", stroke: RED, width: 1.5, dash: [6, 4], points: { show: false }, value: (u, v) => pct(v) },
      ],
      axes: [{ ...AXIS }, { ...AXIS, size: 52 }],
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(limit * 1.2, max ?? 0)] } },
      cursor: { drag: { x: false, y: false } },
      hooks: { draw: [abortMarks(aborted)] },
    };
    return new uPlot(opts, [runs.t, qber, runs.t.map(() => limit)], box);
  }

  keyRate(runs) {
    const aborted = this.abortedTimes(runs);
    const box = this.figure(this.runsRoot,
      "Secure key rate per pulse (log); runs with no key leave a gap, dashed red: aborted");
    const rate = runs.key_rate_per_pulse.map((r) => (r > 0 ? r : null));
    const opts = {
      width: this.width(this.runsRoot), height: HEIGHT,
      series: [
        {},
        { label: "key rate / pulse", stroke: "#5fd38d", width: 2, points: { show: true, size: 5 }, value: (u, v) => sci(v) },
      ],
      axes: [{ ...AXIS }, { ...AXIS, size: 64, values: (u, vals) => vals.map((v) => (v == null ? "" : v.toExponential(0))) }],
      scales: { x: { time: true }, y: { distr: 3, log: 10 } },
      cursor: { drag: { x: false, y: false } },
      hooks: { draw: [abortMarks(aborted)] },
    };
    return new uPlot(opts, [runs.t, rate], box);
  }

  distance(data) {
    const curve = data.distance;
    const runs = data.runs;
    const points = runs.t
      .map((_, i) => [runs.distance_km[i], runs.key_rate_per_pulse[i], runs.aborted[i]])
      .filter(([d, rate]) => d != null && rate > 0);
    const box = this.figure(this.distanceRoot,
      `Key rate per pulse against distance (km, log y); dots: emulated runs (${points.length})`);
    const opts = {
      width: this.width(this.distanceRoot, true), height: 240,
      series: [
        { value: (u, v) => (v == null ? "–" : `${v.toFixed(0)} km`) },
        { label: "theory, infinite decoys", stroke: "#6cc6ff", width: 2, points: { show: false }, value: (u, v) => sci(v) },
        { label: "theory, vacuum + weak decoy (this link)", stroke: "#5fd38d", width: 2, points: { show: false }, value: (u, v) => sci(v) },
        { label: "PLOB bound", stroke: "#c59bff", width: 2, dash: [6, 4], points: { show: false }, value: (u, v) => sci(v) },
      ],
      axes: [{ ...AXIS }, { ...AXIS, size: 64, values: (u, vals) => vals.map((v) => (v == null ? "" : v.toExponential(0))) }],
      scales: { x: { time: false }, y: { distr: 3, log: 10 } },
      cursor: { drag: { x: false, y: false } },
      hooks: { draw: [runDots(points)] },
    };
    return new uPlot(opts, [curve.distance_km, curve.theory, curve.vacuum_weak, curve.plob], box);
  }

  width(root, full = false) {
    const w = root.clientWidth;
    return Math.max(260, !full && w >= 900 ? Math.floor(w / 2) - 16 : w - 8);
  }

  resize() {
    for (const plot of this.plots) {
      const root = plot.root.closest(".trend-charts");
      plot.setSize({ width: this.width(root, root === this.distanceRoot), height: plot.height });
    }
  }
}

const page = document.getElementById("security-page");
if (page) new SecurityCharts(page).start();
