// Trend charts (uPlot, served from our own static files): vital signs and NEWS2
// over 24 hours or 7 days, in buckets (mean; min–max in the legend).

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { element, getJSON } from "./util.js";

const COLOURS = ["#5fd38d", "#6cc6ff", "#f2b84b", "#ff7a8a", "#c59bff", "#e6e9ec"];
const GAP_BUCKETS = 3;
const AXIS = { stroke: "#b7c0c9", grid: { stroke: "#26303a", width: 1 }, ticks: { stroke: "#26303a" } };

export class TrendCharts {
  constructor(root, url) {
    this.root = root;
    this.url = url;
    this.range = "24h";
    this.plots = [];
    const group = document.querySelector('.segmented[aria-label="Trend period"]');
    this.buttons = [...group.querySelectorAll("button[data-range]")];
    for (const button of this.buttons) button.addEventListener("click", () => this.select(button));
    group.addEventListener("keydown", (event) => this.arrows(event));
    new ResizeObserver(() => this.resize()).observe(root);
  }

  start() { this.reload(); }

  select(button) {
    for (const b of this.buttons) {
      b.setAttribute("aria-checked", String(b === button));
      b.tabIndex = b === button ? 0 : -1;
    }
    this.range = button.dataset.range;
    this.reload();
  }

  arrows(event) {
    if (!["ArrowLeft", "ArrowRight"].includes(event.key)) return;
    const i = this.buttons.findIndex((b) => b.getAttribute("aria-checked") === "true");
    const next = this.buttons[(i + (event.key === "ArrowRight" ? 1 : this.buttons.length - 1)) % this.buttons.length];
    next.focus();
    this.select(next);
  }

  async reload() {
    try {
      const trends = await getJSON(`${this.url}?range=${this.range}`);
      this.draw(trends);
    } catch (error) {
      this.root.replaceChildren(element("p", { class: "hint", text: "Could not load the trends." }));
      console.warn("trends", error);
    }
  }

  draw(trends) {
    for (const plot of this.plots) plot.destroy();
    this.plots = [];
    const charts = trends.charts.filter((c) => c.lines.length);
    if (!charts.length) {
      this.root.replaceChildren(element("p", { class: "hint", text: "No readings in this period." }));
      return;
    }
    this.root.replaceChildren();
    for (const chart of charts) this.plots.push(this.plot(chart, trends.t));
  }

  // Per chart: drop empty buckets, but keep one null where readings stop for
  // more than a few buckets, so that the line breaks at a real gap.
  compact(chart, t) {
    const step = t.length > 1 ? t[1] - t[0] : 1;
    const xs = [];
    const ys = chart.lines.map(() => []);
    let last = null;
    t.forEach((x, i) => {
      if (chart.lines.every((l) => l.mean[i] === null)) return;
      if (last !== null && x - last > GAP_BUCKETS * step) {
        xs.push(last + step);
        ys.forEach((y) => y.push(null));
      }
      xs.push(x);
      chart.lines.forEach((l, k) => ys[k].push(l.mean[i]));
      last = x;
    });
    return [xs, ...ys];
  }

  plot(chart, t) {
    const box = element("figure", { class: "trend" },
      element("figcaption", { text: chart.unit ? `${chart.label} (${chart.unit})` : chart.label }));
    this.root.append(box);
    const data = this.compact(chart, t);
    const series = [{}, ...chart.lines.map((line, i) => ({
      label: line.name,
      stroke: COLOURS[(chart.key === "news2" ? 5 : i + this.plots.length) % COLOURS.length],
      width: 2,
      points: { show: data[0].length < 60, size: 5 },
      value: (u, v) => (v == null ? "–" : v.toFixed(chart.key === "temp" ? 1 : 0)),
    }))];
    const opts = {
      width: this.width(), height: 150,
      series,
      axes: [{ ...AXIS }, { ...AXIS, size: 48 }],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: () => [t[0], t[t.length - 1]] } },
    };
    return new uPlot(opts, data, box);
  }

  width() {
    const w = this.root.clientWidth;
    return Math.max(260, w >= 900 ? Math.floor(w / 2) - 16 : w - 8);
  }

  resize() {
    for (const plot of this.plots) plot.setSize({ width: this.width(), height: 150 });
  }
}
