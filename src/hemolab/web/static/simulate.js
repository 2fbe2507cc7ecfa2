// The simulate page: sliders for a model's parameters and dose; the plot follows (debounced).
"use strict";

const state = { model: null, values: {}, dose: null };
const plotDiv = document.getElementById("sim-plot");
const status = document.getElementById("sim-status");
const modelSel = document.getElementById("model");
const varSel = document.getElementById("variable");
const tEnd = document.getElementById("t_end");
let seq = 0;

function sliderFor(name, value, lo, hi, unit, onChange) {
  // log scale from value/10 to value*10, within the bounds
  const min = Math.max(lo === null ? -Infinity : lo, value / 10);
  const max = Math.min(hi === null ? Infinity : hi, value * 10);
  const input = el("input", { type: "range", min: "0", max: "1000", step: "1", id: "p-" + name, "aria-label": name });
  const out = el("output", { for: "p-" + name });
  const toValue = (k) => min * Math.pow(max / min, k / 1000);
  input.value = String(Math.round(1000 * Math.log(value / min) / Math.log(max / min)));
  const show = (v) => { out.textContent = fmt(v) + (unit ? " " + unit : ""); };
  show(value);
  input.addEventListener("input", () => { const v = toValue(Number(input.value)); show(v); onChange(v); });
  return el("label", { class: "slider" }, el("span", { text: name }), input, out);
}

async function loadModel(name) {
  const m = await api("GET", "/api/models/" + encodeURIComponent(name));
  state.model = m;
  state.values = {};
  document.getElementById("tunit").textContent = m.time_unit;
  tEnd.value = m.t_end;
  varSel.replaceChildren(...[...m.observables.map((o) => o.name), ...m.states.map((s) => s.name)].map((n) => el("option", { text: n })));
  const box = document.getElementById("sliders");
  box.replaceChildren();
  for (const p of m.parameters) {
    if (!(p.value > 0)) continue; // a zero or negative typical value has no log scale
    box.append(sliderFor(p.name, p.value, p.lower, p.upper, p.unit, (v) => { state.values[p.name] = v; update(); }));
  }
  const doseBox = document.getElementById("dose-box");
  doseBox.hidden = !m.dose;
  state.dose = m.dose ? { amount: m.dose.amount, interval: m.dose.interval } : null;
  if (m.dose) {
    for (const [key, unit] of [["amount", m.dose.unit], ["interval", m.time_unit]]) {
      const input = document.getElementById("dose-" + key);
      const out = document.getElementById("dose-" + key + "-out");
      const base = m.dose[key];
      input.min = String(key === "amount" ? 0 : base / 4);
      input.max = String(base * 2);
      input.value = String(base);
      out.textContent = fmt(base) + " " + unit;
      input.oninput = () => { state.dose[key] = Number(input.value); out.textContent = fmt(input.value) + " " + unit; update(); };
    }
  }
  await run();
}

async function run() {
  const mine = ++seq;
  const body = { model: state.model.name, params: state.values, dose: state.dose, t_end: Number(tEnd.value) || null };
  status.textContent = "solving…";
  const t0 = performance.now();
  try {
    const r = await api("POST", "/api/simulate", body);
    if (mine !== seq) return; // a newer request is on its way
    const name = varSel.value || Object.keys(r.series)[0];
    const unit = r.units[name] ? " (" + r.units[name] + ")" : "";
    Plotly.react(plotDiv, [{ x: r.time, y: r.series[name], mode: "lines", name, line: { color: "#b3261e" } }], {
      margin: { t: 30, r: 20, b: 50, l: 60 },
      title: { text: r.model + ": " + name, font: { size: 14 } },
      xaxis: { title: { text: "time (" + r.time_unit + ")" } },
      yaxis: { title: { text: name + unit } },
    }, { displaylogo: false, responsive: true });
    status.textContent = "solved in " + r.elapsed_ms + " ms (round trip " + Math.round(performance.now() - t0) + " ms), status " + r.status;
    plotDiv.dataset.updates = String(Number(plotDiv.dataset.updates || 0) + 1);
  } catch (e) { if (mine === seq) status.textContent = e.message; }
}

const update = debounce(run, 150);
modelSel.addEventListener("change", () => loadModel(modelSel.value));
varSel.addEventListener("change", run);
tEnd.addEventListener("change", run);
document.getElementById("reset").addEventListener("click", () => loadModel(modelSel.value));
const wanted = new URLSearchParams(window.location.search).get("model");
if (wanted && [...modelSel.options].some((o) => o.value === wanted)) modelSel.value = wanted;
else modelSel.value = "friberg_docetaxel";
loadModel(modelSel.value);
