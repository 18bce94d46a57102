// The fleet view's only script (shipped with the package, no CDN): the
// live feed. Server-sent events from /events carry each new alert; the
// alerts page puts it at the top of its table, other pages show a banner.
"use strict";

function cell(row, text, cls) {
  const td = row.insertCell(-1);
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function when(ms) {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
}

function showAlert(alert) {
  const table = document.getElementById("alerts");
  if (table && document.body.dataset.page === "alerts") {
    // A clear ends the raises of its condition, component and sensor shown so far.
    const key = JSON.stringify([alert.device, alert.condition, alert.component, alert.sensor]);
    if (!alert.active) {
      for (const old of table.tBodies[0].rows) {
        if (old.dataset.key === key && old.classList.contains("active")) {
          old.classList.replace("active", "cleared");
          old.cells[3].textContent = "cleared";
        }
      }
    }
    const row = table.tBodies[0].insertRow(0);
    row.className = "new " + (alert.active ? "active" : "cleared");
    row.dataset.device = alert.device;
    row.dataset.seq = alert.seq;
    row.dataset.key = key;
    cell(row, when(alert.time_ms));
    const link = document.createElement("a");
    link.href = "/device/" + encodeURIComponent(alert.device);
    link.textContent = alert.device;
    row.insertCell(-1).appendChild(link);
    cell(row, alert.severity, alert.severity);
    cell(row, alert.active ? "active" : "cleared");
    cell(row, alert.condition);
    cell(row, alert.component);
    cell(row, alert.sensor);
    cell(row, alert.text);
  }
  const banner = document.getElementById("live-banner");
  banner.textContent = "new alert: " + alert.device + " " + alert.severity + " " + alert.condition + " " +
    alert.sensor + (alert.active ? "" : " (cleared)") + " at " + when(alert.time_ms);
  banner.hidden = false;
}

function connect() {
  const state = document.getElementById("live-state");
  const events = new EventSource("/events");
  events.addEventListener("open", () => { state.textContent = "live"; state.className = "up"; });
  events.addEventListener("error", () => { state.textContent = "live: reconnecting"; state.className = ""; });
  events.addEventListener("alert", (event) => showAlert(JSON.parse(event.data)));
}

document.addEventListener("DOMContentLoaded", connect);
