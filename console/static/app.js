// The Angzarr console: plain JavaScript, no build step. Every value from
// the server is put into the page as text (textContent, SVG attributes),
// never as HTML.
const SVG = "http://www.w3.org/2000/svg";
let session = null;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

async function api(path, opts) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, opts || {}));
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

async function act(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": session.csrf },
    body: JSON.stringify(body),
  });
}

const main = () => document.getElementById("main");
function show(...nodes) { main().replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false)); }
function fail(e) { show(h("p", { class: "error", "data-testid": "error" }, String(e.message || e))); }
const enc = encodeURIComponent;
const short = (id) => (id || "").slice(0, 8);
const fmtTime = (t) => new Date(t).toISOString().replace("T", " ").replace("Z", "");
const aggLink = (d, r) => h("a", { href: `#/aggregate/${enc(d)}/${enc(r)}` }, `${d}/${short(r)}`);
const wfLink = (c) => c ? h("a", { href: `#/workflow/${enc(c)}`, "data-testid": "workflow-link" }, c) : h("span", { class: "muted" }, "-");
const typeShort = (t) => t.slice(t.lastIndexOf(".") + 1);

// ---- Topology ----
async function topologyView() {
  const t = await api("/api/topology");
  if (!t.known) return show(h("h1", {}, "Topology"), h("p", { class: "muted" }, "No topology from the control plane yet."));
  const W = 980, rowH = 54, boxW = 210, boxH = 40;
  const rows = Math.max(t.domains.length, t.subscribers.length);
  const svg = s("svg", { width: W, height: rows * rowH + 40, "data-testid": "topology-graph", role: "img" });
  const pos = {};
  const dx = 40, sx = W / 2 - boxW / 2, tx = W - boxW - 40;
  t.domains.forEach((d, i) => { pos["domain:" + d.name] = { x: dx, y: 20 + i * rowH, tx: tx, d }; });
  const offD = (rows - t.domains.length) * rowH / 2, offS = (rows - t.subscribers.length) * rowH / 2;
  t.domains.forEach((d, i) => { pos["domain:" + d.name].y += offD; });
  t.subscribers.forEach((sb, i) => { pos[sb.kind + ":" + sb.name] = { x: sx, y: 20 + offS + i * rowH, sb }; });
  const edges = s("g", {});
  for (const e of t.edges) {
    const a = pos[e.from], b = pos[e.to];
    if (!a || !b) continue;
    let x1, y1, x2, y2, cls = "edge";
    if (e.from.startsWith("domain:")) { x1 = a.x + boxW; y1 = a.y + boxH / 2; x2 = b.x; y2 = b.y + boxH / 2; }
    else { cls += " command"; x1 = a.x + boxW; y1 = a.y + boxH / 2; x2 = tx; y2 = b.y + boxH / 2; }
    const mx = (x1 + x2) / 2;
    edges.append(s("path", { class: cls, d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
  }
  svg.append(edges);
  const node = (x, y, cls, title, sub, testid) => s("g", { class: "node " + cls, transform: `translate(${x},${y})`, "data-testid": testid },
    s("rect", { width: boxW, height: boxH, rx: 6 }),
    s("text", { x: 10, y: 16, "font-weight": 600 }, title),
    s("text", { x: 10, y: 32, fill: "#667085" }, sub));
  const rate = (r) => r < 0 ? "rate n/a" : `${r.toFixed(2)} ev/s`;
  for (const d of t.domains) {
    const p = pos["domain:" + d.name];
    svg.append(node(p.x, p.y, "domain", d.name, `${rate(d.rate)} · ${d.health}`, "node-domain-" + d.name));
    // Targets are drawn again on the right, so commands flow left to right.
    if (t.subscribers.some((sb) => (sb.targets || []).includes(d.name)))
      svg.append(node(tx, p.y, "domain", d.name, "commands in", "node-target-" + d.name));
  }
  for (const sb of t.subscribers) {
    const p = pos[sb.kind + ":" + sb.name];
    const lag = sb.lag ? ` · lag ${sb.lag}` : "";
    svg.append(node(p.x, p.y, sb.kind + " " + sb.health, `${sb.kind} ${sb.name}`, `${sb.health}${lag} · ${sb.deadLetters} parked`, "node-" + sb.kind + "-" + sb.name));
  }
  show(h("h1", {}, "Topology"),
    h("p", { class: "muted legend" }, h("span", {}, "Domains (left) send their events to sagas, process managers and projectors (middle); sagas send commands (dashed) to domains (right)."),
      h("span", {}, `version ${t.version}`)),
    h("div", { class: "card" }, svg));
}

// ---- Streams ----
async function streamsView(domain, tab, param) {
  const ds = await api("/api/domains");
  const list = h("div", { class: "list card", "data-testid": "domains" }, h("strong", {}, "Domains"),
    ds.domains.map((d) => h("a", { href: `#/streams/${enc(d)}`, class: d === domain ? "active" : null }, d)));
  const right = h("div", {});
  show(h("h1", {}, "Streams"), h("div", { class: "grid" }, list, right));
  if (!domain) { right.append(h("p", { class: "muted" }, "Choose a domain.")); return; }
  const tabs = h("p", {}, h("a", { href: `#/streams/${enc(domain)}` }, "Aggregates"), " · ", h("a", { href: `#/streams/${enc(domain)}/log` }, "Log (append order)"));
  right.append(h("h2", {}, domain), tabs);
  if (tab === "log") {
    const page = await api(`/api/domains/${enc(domain)}/log?limit=50${param ? "&cursor=" + enc(param) : ""}`);
    right.append(eventsTable(page.events, true),
      page.next ? h("p", {}, h("a", { href: `#/streams/${enc(domain)}/log/${enc(page.next)}`, "data-testid": "next" }, "Next page →")) : h("p", { class: "muted" }, "End of the log."));
    return;
  }
  const page = await api(`/api/domains/${enc(domain)}/aggregates?limit=50${param ? "&after=" + enc(param) : ""}`);
  right.append(h("table", { "data-testid": "aggregates" }, h("tr", {}, h("th", {}, "Aggregate")),
    page.aggregates.map((r) => h("tr", {}, h("td", { class: "mono" }, h("a", { href: `#/aggregate/${enc(domain)}/${enc(r)}` }, r))))),
    page.next ? h("p", {}, h("a", { href: `#/streams/${enc(domain)}/aggregates/${enc(page.next)}`, "data-testid": "next" }, "Next page →")) : null);
}

function eventsTable(events, withAgg, raw) {
  return h("table", { "data-testid": "events" },
    h("tr", {}, withAgg ? h("th", {}, "Aggregate") : null, h("th", {}, "Seq"), h("th", {}, "Time"), h("th", {}, "Type"), h("th", {}, "Workflow"), h("th", {}, "Event")),
    events.map((e) => h("tr", { "data-testid": "event" },
      withAgg ? h("td", {}, aggLink(e.domain, e.root)) : null,
      h("td", {}, e.sequence), h("td", { class: "mono" }, fmtTime(e.time)), h("td", {}, typeShort(e.type)),
      h("td", { class: "mono" }, wfLink(e.correlation)),
      h("td", {}, e.data ? h("pre", {}, JSON.stringify(e.data, null, 1)) : h("span", { class: "muted" }, e.decodeError),
        raw && e.raw ? h("pre", { class: "muted", "data-testid": "raw" }, "stored (base64 EventPage): " + e.raw) : null))));
}

async function aggregateView(domain, root, query) {
  const q = new URLSearchParams(query || "");
  const params = new URLSearchParams();
  for (const k of ["from", "asOfSeq", "asOfTime", "raw"]) if (q.get(k)) params.set(k, q.get(k));
  const page = await api(`/api/domains/${enc(domain)}/aggregates/${enc(root)}/events?${params}`);
  const seq = h("input", { name: "asOfSeq", placeholder: "as of sequence", size: 14, value: q.get("asOfSeq") || "" });
  const at = h("input", { name: "asOfTime", placeholder: "as of time (RFC 3339)", size: 28, value: q.get("asOfTime") || "" });
  const raw = h("input", { type: "checkbox", name: "raw", checked: q.get("raw") === "1" });
  const form = h("form", { class: "inline", "data-testid": "timetravel", onsubmit: (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    if (seq.value) p.set("asOfSeq", seq.value);
    if (at.value) p.set("asOfTime", at.value);
    if (raw.checked) p.set("raw", "1");
    location.hash = `#/aggregate/${enc(domain)}/${enc(root)}?${p}`;
  } }, "Time travel:", seq, at, h("label", {}, raw, " raw stored form"), h("button", { type: "submit" }, "Show"));
  const next = new URLSearchParams(params); if (page.next) next.set("from", page.next);
  show(h("h1", {}, `${domain} / `, h("span", { class: "mono" }, root)), form,
    eventsTable(page.events, false, q.get("raw") === "1"),
    page.next ? h("p", {}, h("a", { href: `#/aggregate/${enc(domain)}/${enc(root)}?${next}` }, "Next page →")) : null);
}

// ---- Workflows ----
async function workflowView(id) {
  const input = h("input", { name: "id", placeholder: "correlation id", size: 50, value: id || "" });
  const form = h("form", { class: "inline", onsubmit: (ev) => { ev.preventDefault(); location.hash = "#/workflow/" + enc(input.value); } },
    input, h("button", { type: "submit" }, "Follow"));
  if (!id) return show(h("h1", {}, "Workflows"), form, h("p", { class: "muted" }, "Every event links to its workflow; or enter a correlation id."));
  const wf = await api("/api/workflow?id=" + enc(id));
  const W = 900, rowH = 22, left = 260;
  const total = Math.max(wf.durationMs, 1);
  const chart = s("svg", { width: W, height: wf.steps.length * rowH + 24, "data-testid": "workflow-chart" });
  wf.steps.forEach((st, i) => {
    const x = left + (st.sinceStartMs / total) * (W - left - 60);
    const y = 10 + i * rowH;
    chart.append(s("text", { x: 0, y: y + 12 }, `${st.domain}/${short(st.root)} ${st.events.map((e) => typeShort(e.type)).join(", ")}`.slice(0, 40)));
    chart.append(s("rect", { class: "bar " + st.kind, x, y: y + 2, width: 10, height: 12, rx: 2 }));
    chart.append(s("text", { x: x + 14, y: y + 12, fill: "#667085" }, `+${st.sinceStartMs.toFixed(1)} ms`));
  });
  const rows = wf.steps.map((st) => h("tr", { "data-testid": "step", "data-kind": st.kind, "data-domain": st.domain, "data-confirmed": st.confirmed ? "yes" : "no" },
    h("td", {}, h("span", { class: "badge " + st.kind }, st.kind),
      st.kind === "saga" ? h("div", { class: "muted" }, st.confirmed ? "confirmed by its idempotency key" : "from the topology") : null),
    h("td", { "data-testid": "step-by" }, st.by ? st.by.join(" or ") : ""),
    h("td", {}, aggLink(st.domain, st.root)),
    h("td", {}, st.events.map((e) => h("div", {}, `#${e.sequence} ${typeShort(e.type)}`))),
    h("td", {}, `${st.tookMs.toFixed(1)} ms`),
    h("td", { class: "muted" }, (st.projectors || []).join(", "))));
  show(h("h1", {}, "Workflow ", h("span", { class: "mono" }, wf.correlation)), form,
    h("p", { class: "muted" }, `${wf.steps.length} steps across ${wf.domains.join(", ")} in ${wf.durationMs.toFixed(1)} ms`),
    h("div", { class: "card" }, chart),
    h("table", { "data-testid": "steps" }, h("tr", {}, h("th", {}, "Step"), h("th", {}, "By"), h("th", {}, "Aggregate"), h("th", {}, "Events"), h("th", {}, "Took"), h("th", {}, "Projected by")), rows),
    wf.deadLetters.length ? h("h2", { class: "error" }, `${wf.deadLetters.length} parked`) : null,
    wf.deadLetters.length ? deadLetterTable(wf.deadLetters, false) : null);
}

// ---- Fan-out ----
function sparkline(history, name) {
  const W = 220, H = 36;
  const vals = history.map((p) => p.lag[name] || 0);
  const max = Math.max(1, ...vals);
  const pts = vals.map((v, i) => `${(i / Math.max(1, vals.length - 1)) * W},${H - 2 - (v / max) * (H - 4)}`).join(" ");
  return s("svg", { width: W, height: H, "data-testid": "lag-plot-" + name },
    s("line", { class: "axis", x1: 0, y1: H - 1, x2: W, y2: H - 1 }), s("polyline", { class: "spark", points: pts }));
}

function deadLetterTable(dls, actions) {
  const operator = session.role === "operator";
  return h("table", { "data-testid": "deadletters" },
    h("tr", {}, h("th", {}, "Id"), h("th", {}, "Subscriber"), h("th", {}, "Cause"), h("th", {}, "Error"), h("th", {}, "Payload"), actions ? h("th", {}, "") : null),
    dls.map((d) => h("tr", { "data-testid": "deadletter", "data-id": d.id, "data-subscriber": d.subscriber },
      h("td", { class: "mono" }, d.id), h("td", {}, d.subscriber, h("div", { class: "muted" }, `${d.attempts} attempts, ${fmtTime(d.deadAt)}`)),
      h("td", {}, d.cause), h("td", { class: "error" }, d.error),
      h("td", {}, d.events.map((e) => h("div", {}, aggLink(e.domain, e.root), ` #${e.sequence} ${typeShort(e.type)} `, wfLink(e.correlation),
        e.data ? h("pre", {}, JSON.stringify(e.data)) : null)), d.command ? h("pre", {}, "command: " + JSON.stringify(d.command)) : null),
      actions ? h("td", {},
        h("button", { "data-testid": "replay", disabled: !operator, title: operator ? "deliver it again" : "operators only", onclick: () => dlAction("replay", d) }, "Replay"),
        h("button", { class: "secondary", "data-testid": "skip", disabled: !operator, title: operator ? "discard it" : "operators only", onclick: () => dlAction("skip", d) }, "Skip")) : null)));
}

async function dlAction(kind, d) {
  if (kind === "skip" && !confirm(`Discard dead letter ${d.id} of ${d.subscriber} without delivering it?`)) return;
  try {
    const res = await act(`/api/deadletters/${kind}`, { subscriber: d.subscriber, ids: [d.id] });
    const failed = (res.results || []).filter((r) => !r.delivered);
    await fanoutView(failed.length ? `Replay of ${d.id} failed again: ${failed[0].error}` : `${kind === "replay" ? "Replayed" : "Skipped"} ${d.id}.`);
  } catch (e) { await fanoutView(`${kind} failed: ${e.message}`); }
}

async function fanoutView(notice) {
  const [f, dl] = await Promise.all([api("/api/fanout"), api("/api/deadletters")]);
  show(h("h1", {}, "Fan-out"), notice ? h("p", { class: "card", "data-testid": "notice" }, notice) : null,
    h("table", { "data-testid": "subscribers" },
      h("tr", {}, h("th", {}, "Subscriber"), h("th", {}, "Lag (events)"), h("th", {}, "Lag, last minutes"), h("th", {}, "Positions"), h("th", {}, "Parked")),
      f.subscribers.map((sb) => h("tr", { "data-testid": "subscriber", "data-name": sb.name },
        h("td", {}, h("span", { class: "badge " + sb.kind }, sb.kind), " ", sb.name, sb.error ? h("div", { class: "error" }, sb.error) : null),
        h("td", {}, sb.lag + (sb.lagCapped ? "+" : "")), h("td", {}, sparkline(f.history, sb.name)),
        h("td", { class: "mono" }, sb.partitions.map((p) => h("div", {}, `${p.domain}[${p.partition}] at ${p.committed} of ${p.end}${p.started ? "" : " (not started)"}`)),
          Object.entries(sb.lagByDomain || {}).filter(([, n]) => n > 0).map(([d, n]) => h("div", { class: "error" }, `${n} ${d} events behind`))),
        h("td", {}, sb.deadLetters)))),
    h("h2", {}, `Dead letters (${dl.deadLetters.length})`),
    session.role === "operator" ? null : h("p", { class: "muted" }, "Replay and skip are for operators."),
    dl.deadLetters.length ? deadLetterTable(dl.deadLetters, true) : h("p", { class: "muted", "data-testid": "no-deadletters" }, "Nothing is parked."));
}

// ---- Live ----
let live = null;
function liveView() {
  const list = h("div", { "data-testid": "live" });
  const status = h("p", { class: "muted", "data-testid": "live-status" }, "connecting…");
  show(h("h1", {}, "Live"), status, list);
  live = new EventSource("/api/live");
  live.addEventListener("ready", () => { status.textContent = "following every domain: new events appear at the top"; });
  live.addEventListener("event", (m) => {
    const e = JSON.parse(m.data);
    list.prepend(h("div", { class: "live-event", "data-testid": "live-event" },
      h("span", { class: "mono" }, fmtTime(e.time)), " ", aggLink(e.domain, e.root), ` #${e.sequence} `, h("strong", {}, typeShort(e.type)), " ", wfLink(e.correlation)));
    while (list.childElementCount > 500) list.lastChild.remove();
  });
  live.onerror = () => { status.textContent = "disconnected; reconnecting…"; };
}

// ---- Router ----
async function route() {
  if (live) { live.close(); live = null; }
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").map(decodeURIComponent);
  const view = parts[0] || "topology";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === (view === "aggregate" ? "streams" : view));
  document.body.dataset.view = view;
  document.body.dataset.ready = "";
  try {
    if (!session) session = await api("/api/session");
    document.getElementById("who").textContent = `${session.user} (${session.role})`;
    switch (view) {
      case "streams": await streamsView(parts[1], parts[2], parts[3]); break;
      case "aggregate": await aggregateView(parts[1], parts[2], query); break;
      case "workflow": await workflowView(parts.slice(1).join("/")); break;
      case "fanout": await fanoutView(); break;
      case "live": liveView(); break;
      default: await topologyView();
    }
  } catch (e) { fail(e); }
  document.body.dataset.ready = view;
}

window.addEventListener("hashchange", route);
route();
