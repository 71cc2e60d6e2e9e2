// A WebSocket that reconnects with backoff and pings to notice a dead link.

const PING_EVERY_MS = 15000;
const SILENCE_LIMIT_MS = 25000; // no message (not even a pong) for this long: dead
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];

export class LiveSocket {
  constructor(path, { onMessage, onDown, onOpen, onPong }) {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    this.url = `${scheme}//${window.location.host}${path}`;
    this.onMessage = onMessage;
    this.onDown = onDown ?? (() => {});
    this.onOpen = onOpen ?? (() => {});
    this.onPong = onPong ?? (() => {});
    this.attempt = 0;
    this.pingId = 0;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.connect();
    window.addEventListener("pagehide", () => this.stop());
  }

  stop() {
    this.stopped = true;
    clearInterval(this.heartbeat);
    this.ws?.close(1000, "page closed");
  }

  connect() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.attempt = 0;
      this.lastHeard = Date.now();
      this.heartbeat = setInterval(() => this.beat(), PING_EVERY_MS);
      this.onOpen();
    });
    ws.addEventListener("message", (event) => {
      this.lastHeard = Date.now();
      const message = JSON.parse(event.data);
      if (message.type === "pong") this.onPong(message);
      else this.onMessage(message);
    });
    ws.addEventListener("close", (event) => this.closed(ws, event));
  }

  beat() {
    if (Date.now() - this.lastHeard > SILENCE_LIMIT_MS) {
      this.ws.close(4000, "no answer to pings");
      return;
    }
    this.pingId += 1;
    this.send({ type: "ping", id: this.pingId });
  }

  send(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    clearInterval(this.heartbeat);
    if (this.stopped) return;
    if (event.code === 4403) {
      // Refused: the session ended (signed out elsewhere, or idle on the server).
      window.location.assign(`${document.body.dataset.loginUrl || "/login/"}?idle=1`);
      return;
    }
    this.onDown(event);
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    setTimeout(() => this.connect(), base + Math.random() * base * 0.3);
  }
}
