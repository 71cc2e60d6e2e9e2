// Small helpers shared by the dashboard's modules.

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

// Requests the page makes by itself carry X-RPM-Background, so that they do not
// count as activity for the inactivity sign-out (frontend/middleware.py).
export async function request(url, { method = "GET", body, background = false } = {}) {
  const headers = { Accept: "application/json" };
  if (background) headers["X-RPM-Background"] = "1";
  if (method !== "GET") {
    headers["X-CSRFToken"] = csrfToken();
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 || response.status === 403) {
    if (response.redirected || response.status === 401) signedOut();
  }
  return response;
}

export async function getJSON(url, options = {}) {
  const response = await request(url, { background: true, ...options });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

export async function getHTML(url) {
  const response = await fetch(url, {
    credentials: "same-origin",
    headers: { "X-RPM-Background": "1" },
  });
  if (response.redirected && new URL(response.url).pathname.startsWith("/login")) {
    signedOut();
    throw new Error("signed out");
  }
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.text();
}

function signedOut() {
  const login = document.body.dataset.loginUrl || "/login/";
  window.location.assign(`${login}?idle=1`);
}

export function timeAgo(date, now = Date.now()) {
  const s = Math.max(0, Math.round((now - date.getTime()) / 1000));
  if (s < 10) return "just now";
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.floor(h / 24)} d ago`;
}

export function refreshAges(root = document) {
  for (const el of root.querySelectorAll("time.age[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) {
      const ago = timeAgo(when);
      el.textContent = el.classList.contains("since")
        ? ago.replace(/ ago$/, "").replace("just now", "a moment")
        : ago;
      el.title = when.toLocaleString();
    }
  }
}

export function element(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
