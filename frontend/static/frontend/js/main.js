// Every signed-in page: the alert panel, the inactivity sign-out, live ages.

import { AlertPanel } from "./alerts.js";
import { IdleSignOut } from "./idle.js";
import { refreshAges } from "./util.js";

const body = document.body.dataset;

const panel = new AlertPanel(document.getElementById("alert-panel"));
window.rpmAlerts = panel;
panel.start();

new IdleSignOut({
  timeoutS: Number(body.idleTimeout),
  keepaliveUrl: body.keepaliveUrl,
  form: document.getElementById("logout-form"),
  dialog: document.getElementById("idle-dialog"),
}).start();

refreshAges();
setInterval(() => refreshAges(), 15000);
