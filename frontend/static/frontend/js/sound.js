// The audible alarm for high-priority alerts (Web Audio), in the spirit of
// IEC 60601-1-8: a burst of 3 + 2 pulses, repeated while a high-priority alert is
// active and unacknowledged. Never muted by default; muting lasts for this page.

const PULSE_S = 0.15;
const GAP_S = 0.1;
const PAUSE_S = 0.35;
const REPEAT_MS = 8000;
const PITCH_HZ = 660;

export class AlarmSound {
  constructor(toggle, hint) {
    this.toggle = toggle;
    this.hint = hint;
    this.muted = false;
    this.needed = () => false;
    this.lastBurst = 0;
    this.context = null;
    toggle.addEventListener("click", () => this.setMuted(!this.muted));
    for (const type of ["pointerdown", "keydown"]) {
      document.addEventListener(type, () => this.unlock(), { capture: true });
    }
    this.setMuted(false);
    setInterval(() => this.update(), 1000);
  }

  setMuted(muted) {
    this.muted = muted;
    this.toggle.setAttribute("aria-pressed", String(muted));
    this.toggle.textContent = muted ? "Sound muted" : "Mute sound";
    this.toggle.classList.toggle("muted-on", muted);
    this.update();
  }

  unlock() {
    try {
      this.context ??= new AudioContext();
      if (this.context.state === "suspended") this.context.resume();
    } catch (error) {
      console.warn("no Web Audio", error);
    }
    this.update();
  }

  soon() {
    this.lastBurst = 0;
    this.update();
  }

  update() {
    const wanted = this.needed() && !this.muted;
    const blocked = !this.context || this.context.state !== "running";
    this.hint.hidden = !(wanted && blocked);
    document.body.dataset.alarmSound = wanted ? (blocked ? "blocked" : "sounding") : "quiet";
    if (!wanted || blocked) return;
    const now = Date.now();
    if (now - this.lastBurst >= REPEAT_MS) {
      this.lastBurst = now;
      this.burst();
    }
  }

  burst() {
    const ctx = this.context;
    let t = ctx.currentTime + 0.05;
    for (const group of [3, 2]) {
      for (let i = 0; i < group; i += 1) {
        this.pulse(t);
        t += PULSE_S + GAP_S;
      }
      t += PAUSE_S;
    }
  }

  pulse(at) {
    // A square wave carries the harmonics that make an alarm easy to locate.
    const ctx = this.context;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "square";
    osc.frequency.value = PITCH_HZ;
    gain.gain.setValueAtTime(0, at);
    gain.gain.linearRampToValueAtTime(0.18, at + 0.015);
    gain.gain.setValueAtTime(0.18, at + PULSE_S - 0.02);
    gain.gain.linearRampToValueAtTime(0, at + PULSE_S);
    osc.connect(gain).connect(ctx.destination);
    osc.start(at);
    osc.stop(at + PULSE_S + 0.01);
  }
}
