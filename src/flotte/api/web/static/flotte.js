// flotte serve's page: the plan refreshed as the create form changes, a cluster's
// nodes kept current from the server's event stream, and a delete button that waits
// for the cluster's name. Every page works without it.
"use strict";

function refreshPlan(form, box) {
  let timer = null;
  let asked = 0;
  const update = () => {
    const params = new URLSearchParams();
    for (const name of ["name", "cluster_template_id", "master_count", "node_count"]) {
      const field = form.elements.namedItem(name);
      if (field) params.set(name, field.value);
    }
    const mine = ++asked;
    fetch("/ui/clusters/plan?" + params.toString(), { credentials: "same-origin" })
      .then((r) => r.text())
      .then((html) => { if (mine === asked) box.innerHTML = html; })
      .catch(() => {});
  };
  form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(update, 150); });
  form.addEventListener("change", update);
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
}

function render(state) {
  document.getElementById("status").textContent = state.status;
  document.getElementById("status-reason").textContent = state.status_reason || "—";
  document.getElementById("health").textContent = state.health;
  const groups = document.querySelector("#groups tbody");
  groups.replaceChildren();
  for (const g of state.groups) {
    const row = groups.insertRow();
    cell(row, g.name); cell(row, g.role); cell(row, String(g.count), "num");
    cell(row, g.status + (g.status_reason ? " — " + g.status_reason : ""));
    cell(row, "");
  }
  const nodes = document.querySelector("#nodes tbody");
  nodes.replaceChildren();
  for (const n of state.nodes) {
    const row = nodes.insertRow();
    row.dataset.node = n.name;
    cell(row, n.name); cell(row, n.role); cell(row, n.address || "—", "mono");
    cell(row, n.state, "state"); cell(row, n.engine || "—", "engine wide");
    cell(row, n.phase, "phase"); cell(row, n.swarm, "wide");
  }
  const journal = document.getElementById("journal");
  for (const e of state.journal || []) {
    const li = document.createElement("li");
    li.className = "j-" + e.phase;
    const time = document.createElement("time");
    time.textContent = (e.at || "").slice(11, 19);
    const phase = document.createElement("b");
    phase.textContent = e.phase;
    li.append(time, " " + e.operation + " " + e.step + " ", phase, e.detail ? " — " + e.detail : "");
    journal.append(li);
  }
  journal.scrollTop = journal.scrollHeight;
}

function follow(section) {
  const source = new EventSource(section.dataset.events);
  source.addEventListener("snapshot", (event) => {
    const state = JSON.parse(event.data);
    if (state.gone) { source.close(); window.location.assign("/ui/clusters"); return; }
    render(state);
    document.body.dataset.lastEvent = String(Date.now());
    if (!state.status.endsWith("IN_PROGRESS")) source.close();
  });
}

function confirmDelete(form) {
  const input = form.elements.namedItem("confirm");
  const button = form.querySelector("button");
  const check = () => { button.disabled = input.value.trim() !== form.dataset.name; };
  input.addEventListener("input", check);
  check();
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("create-form");
  const box = document.getElementById("plan");
  if (form && box) refreshPlan(form, box);
  const live = document.getElementById("live");
  if (live && live.dataset.events) follow(live);
  const del = document.getElementById("delete-form");
  if (del) confirmDelete(del);
});
