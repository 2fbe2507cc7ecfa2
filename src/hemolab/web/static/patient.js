// A patient's page: lab history, fit and forecast (a job), forecast history.
"use strict";

const labsDiv = document.getElementById("labs-plot");
const handle = labsDiv.dataset.handle;
const base = "/api/patients/" + encodeURIComponent(handle);
const layout = (title, unit) => ({
  margin: { t: 30, r: 20, b: 50, l: 60 }, title: { text: title, font: { size: 14 } },
  xaxis: { title: { text: "time (" + unit + ", patient's clock)" } },
});

async function showLabs() {
  const doc = await api("GET", base + "/labs");
  const by = {};
  for (const v of doc.values) {
    (by[v.analyte] = by[v.analyte] || { x: [], y: [], unit: v.unit }).x.push(v.time_h / 24);
    by[v.analyte].y.push(v.value);
  }
  const traces = Object.entries(by).map(([name, s], k) => ({
    x: s.x, y: s.y, name: name + " (" + s.unit + ")", mode: "lines+markers", yaxis: k ? "y2" : "y", visible: k < 2 ? true : "legendonly",
  }));
  const lay = layout("lab history", "d");
  lay.yaxis2 = { overlaying: "y", side: "right" };
  Plotly.newPlot(labsDiv, traces, lay, { displaylogo: false, responsive: true });
}

async function showForecasts() {
  const rows = await api("GET", base + "/forecasts");
  document.querySelector("#forecasts tbody").replaceChildren(...rows.reverse().map((f) => el("tr", {},
    el("td", { text: f.made_at.slice(0, 19) }), el("td", { text: f.model }), el("td", { text: f.method }),
    el("td", { text: f.threshold }), el("td", { text: fmt(f.t_data) + " " + f.time_unit }),
    el("td", { text: fmt(f.median) }), el("td", { text: "[" + fmt(f.lower) + ", " + fmt(f.upper) + "]" }),
    el("td", { text: fmt(f.p_within_horizon, 2) }))));
}

function showFit(r) {
  const b = r.bands;
  const traces = [
    { x: r.time, y: b.q95, line: { width: 0 }, showlegend: false, hoverinfo: "skip" },
    { x: r.time, y: b.q05, fill: "tonexty", fillcolor: "rgba(179,38,30,0.15)", line: { width: 0 }, name: "90 % band" },
    { x: r.time, y: b.q75, line: { width: 0 }, showlegend: false, hoverinfo: "skip" },
    { x: r.time, y: b.q25, fill: "tonexty", fillcolor: "rgba(179,38,30,0.3)", line: { width: 0 }, name: "50 % band" },
    { x: r.time, y: b.q50, line: { color: "#b3261e" }, name: "fitted and forecast (median)" },
    { x: r.observed.time, y: r.observed.value, mode: "markers", marker: { color: "black" }, name: "observed" },
  ];
  const lay = layout(r.model + " fitted (" + r.forecast.method + "), " + r.forecast.threshold, r.time_unit);
  const th = Number(r.forecast.threshold.split(/[<>]=?/)[1]);
  lay.shapes = [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: th, y1: th, line: { dash: "dash", width: 1 } },
    { type: "line", yref: "paper", y0: 0, y1: 1, x0: r.forecast.t_last_observation, x1: r.forecast.t_last_observation, line: { color: "grey", width: 1 } }];
  const fitDiv = document.getElementById("fit-plot");
  fitDiv.hidden = false;
  Plotly.newPlot(fitDiv, traces, lay, { displaylogo: false, responsive: true });
  const f = r.forecast;
  document.getElementById("fit-summary").textContent = f.median === null
    ? f.threshold + ": not reached by the median within the horizon (P = " + fmt(f.p_within_horizon, 2) + ")"
    : f.threshold + " at about " + fmt(f.median) + " " + r.time_unit + " (90 % interval " + fmt(f.lower) + "–" + fmt(f.upper) +
      "), " + fmt(f.median - f.t_last_observation, 3) + " " + r.time_unit + " after the last observation. " + r.label;
}

const form = document.getElementById("fit-form");
if (form) {
  const status = document.getElementById("fit-status");
  const cancel = document.getElementById("fit-cancel");
  let current = null;
  cancel.addEventListener("click", () => current && api("POST", "/api/jobs/" + encodeURIComponent(current) + "/cancel"));
  async function poll() {
    const j = await api("GET", "/api/jobs/" + encodeURIComponent(current));
    status.textContent = j.status + " — " + j.stage + " (" + j.elapsed_s + " s)" + (j.message ? ": " + j.message : "");
    if (!["done", "failed", "cancelled"].includes(j.status)) { setTimeout(poll, 800); return; }
    cancel.hidden = true;
    if (j.status === "done" && j.result) { showFit(j.result); showForecasts(); }
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    try {
      const job = await api("POST", base + "/fit", {
        model: data.get("model"), threshold: data.get("threshold"), horizon_days: Number(data.get("horizon_days")),
      });
      current = job.id;
      cancel.hidden = false;
      poll();
    } catch (e) { status.textContent = e.message; }
  });
  form.querySelector("button").disabled = false; // only once the handler is attached
}
showLabs();
showForecasts();
