// A bedside-monitor ECG strip: a trace swept left to right at 25 mm/s over a
// millimetre grid (10 mm/mV), erasing just ahead of the pen. Samples arrive in
// segments over HTTP and are played back in real time from a bounded queue.

const GRID_SMALL = "rgba(60, 120, 80, 0.28)";
const GRID_LARGE = "rgba(80, 160, 105, 0.55)";
const BACKGROUND = "#050b08";
const TRACE = "#4cff8a";
const ERASE_AHEAD_PX = 18;
const START_BUFFER_S = 1.0; // wait for this much before the pen moves
const MAX_BACKLOG_S = 20; // beyond this, drop the oldest: stay close to live

export class EcgStrip {
  constructor(canvas, { pxPerMm = 4, mmPerS = 25, mmPerMv = 10 } = {}) {
    this.canvas = canvas;
    this.pxPerMm = pxPerMm;
    this.pxPerS = mmPerS * pxPerMm;
    this.pxPerMv = mmPerMv * pxPerMm;
    this.queue = []; // {data: Float32Array in mV, fs, i}
    this.x = 0;
    this.lastY = null;
    this.carry = 0;
    this.playing = false;
    this.resize();
    new ResizeObserver(() => this.resize()).observe(canvas);
    requestAnimationFrame((t) => this.frame(t));
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(200, Math.round(this.canvas.clientWidth));
    const height = Math.round(this.canvas.clientHeight) || 200;
    if (width === this.width && height === this.height) return;
    this.width = width;
    this.height = height;
    this.canvas.width = width * dpr;
    this.canvas.height = height * dpr;
    this.ctx = this.canvas.getContext("2d");
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.grid = this.drawGrid(width, height, dpr);
    this.ctx.drawImage(this.grid, 0, 0, width, height);
    this.x = 0;
    this.lastY = null;
  }

  drawGrid(width, height, dpr) {
    const grid = document.createElement("canvas");
    grid.width = width * dpr;
    grid.height = height * dpr;
    const g = grid.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = BACKGROUND;
    g.fillRect(0, 0, width, height);
    const mm = this.pxPerMm;
    for (const [step, colour] of [[mm, GRID_SMALL], [5 * mm, GRID_LARGE]]) {
      g.strokeStyle = colour;
      g.lineWidth = 1;
      g.beginPath();
      for (let x = 0.5; x < width; x += step) { g.moveTo(x, 0); g.lineTo(x, height); }
      for (let y = 0.5; y < height; y += step) { g.moveTo(0, y); g.lineTo(width, y); }
      g.stroke();
    }
    return grid;
  }

  bufferedSeconds() {
    return this.queue.reduce((s, c) => s + (c.data.length - c.i) / c.fs, 0);
  }

  push(samplesUv, fs) {
    const data = Float32Array.from(samplesUv, (v) => v / 1000);
    this.queue.push({ data, fs, i: 0 });
    while (this.bufferedSeconds() > MAX_BACKLOG_S && this.queue.length > 1) this.queue.shift();
  }

  // Draw the end of an old recording across the whole strip, without sweeping.
  showStatic(samplesUv, fs) {
    const seconds = this.width / this.pxPerS;
    const tail = samplesUv.slice(-Math.round(seconds * fs));
    this.ctx.drawImage(this.grid, 0, 0, this.width, this.height);
    this.ctx.strokeStyle = TRACE;
    this.ctx.lineWidth = 1.6;
    this.ctx.beginPath();
    tail.forEach((v, i) => {
      const x = (i / fs) * this.pxPerS;
      const y = this.yOf(v / 1000);
      if (i === 0) this.ctx.moveTo(x, y); else this.ctx.lineTo(x, y);
    });
    this.ctx.stroke();
    this.x = 0;
    this.lastY = null;
  }

  yOf(mv) {
    return this.height / 2 - mv * this.pxPerMv;
  }

  frame(now) {
    const dt = this.lastT === undefined ? 0 : Math.min((now - this.lastT) / 1000, 0.1);
    this.lastT = now;
    if (!this.playing && this.bufferedSeconds() >= START_BUFFER_S) this.playing = true;
    if (this.playing && dt > 0) this.sweep(dt);
    requestAnimationFrame((t) => this.frame(t));
  }

  sweep(dt) {
    const ctx = this.ctx;
    const advance = dt * this.pxPerS;
    this.erase(this.x, advance + ERASE_AHEAD_PX);
    ctx.strokeStyle = TRACE;
    ctx.lineWidth = 1.6;
    ctx.lineJoin = "round";
    ctx.beginPath();
    let x = this.x;
    let budget = advance;
    let penDown = this.lastY !== null;
    if (penDown) ctx.moveTo(x, this.lastY);
    while (budget > 0) {
      const chunk = this.queue[0];
      if (!chunk) {
        // No data: the pen lifts and the sweep goes on.
        x = (x + budget) % this.width;
        this.lastY = null;
        this.playing = false;
        break;
      }
      const step = this.pxPerS / chunk.fs;
      const y = this.yOf(chunk.data[chunk.i]);
      if (penDown) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      penDown = true;
      this.lastY = y;
      chunk.i += 1;
      if (chunk.i >= chunk.data.length) this.queue.shift();
      x += step;
      budget -= step;
      if (x >= this.width) {
        ctx.stroke();
        x -= this.width;
        ctx.beginPath();
        ctx.moveTo(x, y);
      }
    }
    ctx.stroke();
    this.x = x;
  }

  erase(from, width) {
    const w = Math.min(width, this.width);
    const first = Math.min(w, this.width - from);
    this.restore(from, first);
    if (first < w) this.restore(0, w - first);
  }

  restore(x, w) {
    if (w <= 0) return;
    const dpr = window.devicePixelRatio || 1;
    this.ctx.drawImage(this.grid, x * dpr, 0, w * dpr, this.height * dpr, x, 0, w, this.height);
  }
}
