// hemolab web explorer: shared helpers and the small pages (no inline script: CSP script-src 'self').
"use strict";

const csrfMeta = document.querySelector('meta[name="csrf-token"]');
const CSRF = csrfMeta ? csrfMeta.content : "";

async function api(method, url, body) {
  const opts = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
  if (method !== "GET") opts.headers["X-CSRF-Token"] = CSRF;
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(url, opts);
  if (res.status === 401) { window.location.assign("/login"); throw new Error("signed out"); }
  let doc = null;
  try { doc = await res.json(); } catch (e) { doc = null; }
  if (!res.ok) throw new Error((doc && doc.detail) || ("request failed (" + res.status + ")"));
  return doc;
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function fmt(x, digits) {
  if (x === null || x === undefined) return "—";
  return Number(x).toPrecision(digits || 4).replace(/\.?0+$/, "").replace(/\.?0+e/, "e");
}

// admin forms: JSON to the API, then reload
for (const form of document.querySelectorAll("form.api-form")) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const status = form.querySelector(".status");
    const body = Object.fromEntries(new FormData(form).entries());
    try {
      await api("POST", form.dataset.api, body);
      status.textContent = "done";
      window.location.reload();
    } catch (e) { status.textContent = e.message; }
  });
}

// protocols: start a job, go to its page
for (const form of document.querySelectorAll("form.run-protocol")) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    try {
      const job = await api("POST", "/api/protocols/run", {
        protocol: form.dataset.protocol,
        population: Number(data.get("population")),
        seed: Number(data.get("seed")),
      });
      window.location.assign("/jobs/" + encodeURIComponent(job.id));
    } catch (e) { alert(e.message); }
  });
}

function progressText(j) {
  if (j.total) return j.stage + ": " + j.done + "/" + j.total;
  return j.stage + (j.message ? " — " + j.message : "");
}

// jobs page: a table polled every second
async function pollJobs() {
  const body = document.querySelector("#jobs tbody");
  if (!body) return;
  try {
    const jobs = await api("GET", "/api/jobs");
    body.replaceChildren(...jobs.map((j) => {
      const cancel = el("button", { text: "Cancel", "data-job": j.id });
      cancel.hidden = ["done", "failed", "cancelled"].includes(j.status);
      cancel.addEventListener("click", () => api("POST", "/api/jobs/" + encodeURIComponent(j.id) + "/cancel").then(pollJobs));
      const link = el("a", { href: "/jobs/" + encodeURIComponent(j.id), text: j.label });
      return el("tr", {}, el("td", {}, link), el("td", { text: j.owner }),
        el("td", { text: j.status, class: "st-" + j.status }), el("td", { text: progressText(j) }),
        el("td", { text: j.elapsed_s + " s" }), el("td", {}, cancel));
    }));
  } catch (e) { /* shown on the next poll */ }
  setTimeout(pollJobs, 1000);
}
if (document.body.dataset.page === "jobs") pollJobs();

// one job: progress, cancel, result
function protocolResult(r) {
  const box = el("div");
  box.append(el("p", { text: r.protocol + " on " + r.model + ": " + r.n_patients + " patients, " +
    r.end + " " + r.time_unit + "; " + (r.safe ? "every limit held" : "a limit broke") }));
  if (r.experiment) box.append(el("p", { text: "recorded as experiment " + r.experiment }));
  const t = el("table", {}, el("thead", {}, el("tr", {}, ...["limit", "P(broken)", "allowed", "held"].map((h) => el("th", { text: h })))));
  const tb = el("tbody");
  for (const l of r.limits || []) {
    tb.append(el("tr", {}, el("td", { text: l.name }), el("td", { text: fmt(l.probability, 3) }),
      el("td", { text: fmt(l.max_probability, 3) }), el("td", { text: l.met ? "yes" : "no", class: l.met ? "ok" : "bad" })));
  }
  t.append(tb);
  box.append(t);
  return box;
}

async function pollJob() {
  const title = document.getElementById("job-title");
  const id = title.dataset.job;
  const cancel = document.getElementById("job-cancel");
  try {
    const j = await api("GET", "/api/jobs/" + encodeURIComponent(id));
    const bar = document.getElementById("job-progress");
    bar.max = j.total || 1;
    bar.value = j.status === "done" ? bar.max : j.done;
    document.getElementById("job-status").textContent = j.status + " — " + progressText(j) + " (" + j.elapsed_s + " s)";
    const finished = ["done", "failed", "cancelled"].includes(j.status);
    cancel.hidden = finished;
    if (finished) {
      const box = document.getElementById("job-result");
      if (j.result && j.kind === "protocol") box.replaceChildren(protocolResult(j.result));
      if (j.result && j.kind === "report") {
        box.replaceChildren(el("p", {}, "written: ", el("a", { href: "/reports/" + encodeURIComponent(j.result.report), target: "_blank", rel: "noopener", text: j.result.report })));
      }
      if (j.result && j.kind === "fit") box.replaceChildren(el("p", { text: "the fit and forecast are on the patient's page" }));
      if (j.status === "failed") box.replaceChildren(el("p", { class: "error", text: j.message }));
      return;
    }
  } catch (e) { document.getElementById("job-status").textContent = e.message; }
  setTimeout(pollJob, 700);
}
if (document.body.dataset.page === "job") {
  document.getElementById("job-cancel").addEventListener("click", () => {
    const id = document.getElementById("job-title").dataset.job;
    api("POST", "/api/jobs/" + encodeURIComponent(id) + "/cancel");
  });
  pollJob();
}

// experiments: write a report of the ticked ones (a job), then offer it
const reportButton = document.getElementById("write-report");
if (reportButton) {
  reportButton.addEventListener("click", async () => {
    const status = document.getElementById("report-status");
    const ids = [...document.querySelectorAll("input.in-report:checked")].map((c) => c.value);
    if (!ids.length) { status.textContent = "tick at least one experiment"; return; }
    try {
      const job = await api("POST", "/api/reports", { experiments: ids });
      const poll = async () => {
        const j = await api("GET", "/api/jobs/" + encodeURIComponent(job.id));
        status.textContent = j.status + " — " + progressText(j);
        if (j.status === "done") {
          status.replaceChildren("written: ", el("a", { href: "/reports/" + encodeURIComponent(j.result.report), target: "_blank", rel: "noopener", text: j.result.report }));
        } else if (!["failed", "cancelled"].includes(j.status)) setTimeout(poll, 700);
      };
      poll();
    } catch (e) { status.textContent = e.message; }
  });
}
