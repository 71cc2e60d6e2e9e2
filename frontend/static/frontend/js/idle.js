// Sign out after a period without activity, warning a minute before. Activity in
// any tab of the dashboard counts (shared through localStorage); the server keeps
// its own clock (frontend/middleware.py), refreshed by a keep-alive while active.

import { request } from "./util.js";

const WARN_BEFORE_MS = 60000;
const KEEPALIVE_EVERY_MS = 60000;
const STORAGE_KEY = "rpm.lastActivity";
const ACTIVITY = ["pointerdown", "pointermove", "keydown", "wheel", "touchstart", "scroll"];

export class IdleSignOut {
  constructor({ timeoutS, keepaliveUrl, form, dialog }) {
    this.timeoutMs = timeoutS * 1000;
    this.keepaliveUrl = keepaliveUrl;
    this.form = form;
    this.dialog = dialog;
    this.seconds = dialog.querySelector("#idle-seconds");
    this.last = Date.now();
    this.lastKeepalive = Date.now();
    this.lastStored = 0;
  }

  start() {
    for (const type of ACTIVITY) {
      document.addEventListener(type, () => this.activity(), { passive: true, capture: true });
    }
    window.addEventListener("storage", (event) => {
      if (event.key === STORAGE_KEY) this.last = Math.max(this.last, Number(event.newValue) || 0);
    });
    this.dialog.querySelector("#idle-stay").addEventListener("click", () => this.activity());
    this.timer = setInterval(() => this.tick(), 1000);
  }

  activity() {
    const now = Date.now();
    this.last = now;
    if (now - this.lastStored > 5000) {
      this.lastStored = now;
      localStorage.setItem(STORAGE_KEY, String(now));
    }
    if (!this.dialog.hidden) this.hideWarning();
    if (now - this.lastKeepalive > KEEPALIVE_EVERY_MS) {
      this.lastKeepalive = now;
      request(this.keepaliveUrl, { method: "POST", body: {} }).catch(() => {});
    }
  }

  tick() {
    const shared = Number(localStorage.getItem(STORAGE_KEY)) || 0;
    const idle = Date.now() - Math.max(this.last, shared);
    if (idle >= this.timeoutMs) {
      this.signOut();
    } else if (idle >= this.timeoutMs - WARN_BEFORE_MS) {
      this.showWarning(Math.ceil((this.timeoutMs - idle) / 1000));
    } else if (!this.dialog.hidden) {
      this.hideWarning();
    }
  }

  showWarning(seconds) {
    this.seconds.textContent = String(seconds);
    if (this.dialog.hidden) {
      this.returnFocus = document.activeElement;
      this.dialog.hidden = false;
      this.dialog.querySelector("#idle-stay").focus();
    }
  }

  hideWarning() {
    this.dialog.hidden = true;
    this.returnFocus?.focus?.();
  }

  signOut() {
    clearInterval(this.timer);
    const next = document.createElement("input");
    next.type = "hidden";
    next.name = "next";
    next.value = `${document.body.dataset.loginUrl}?idle=1`;
    this.form.append(next);
    this.form.submit();
  }
}
