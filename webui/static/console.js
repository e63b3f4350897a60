// The assistance-centre console: the live alarm queue (refetched on every event of the SSE stream),
// ages and escalation timers counting each second, claim / acknowledge / note / resolve, and the
// device's last position on the street map; the customer's address, contacts (tel: links) and devices.
import { Api, L, age, el, say, session, streetMap, when } from "/static/ui/common.js";

const api = new Api("vigil.operator");
const $ = (id) => document.getElementById(id);
const status = $("status");
const map = streetMap($("map"), api, { zoom: 13 });
const marker = L.layerGroup().addTo(map);
let account = null;
let queue = [];
let selected = null;   // alarm id
let refetch = null;
let alarmBase = "";   // the alarm process's API (same host, its own port) when the server runs one

// Queue, alarm and customer-history routes go to the alarm process when there is one: its event loop
// does not wait behind ingest, so new alarms show up at once under load.
const alarms = (path) => alarmBase + path;

async function findAlarmApi() {
  const r = await fetch("/console/config.json").catch(() => null);
  const port = r && r.ok ? (await r.json()).alarm_api_port : null;
  alarmBase = port ? `${location.protocol}//${location.hostname}:${port}` : "";
}

function fail(err) { say(status, err.message, "error"); }

session(api, start, fail);

async function start() {
  account = await api.get("/v1/account");
  if (account.role !== "operator") throw new Error("this console is for operators");
  $("login").hidden = true;
  $("who").hidden = false;
  $("who-name").textContent = account.username;
  map.loadRoads();
  await findAlarmApi();
  await loadQueue();
  const ctl = new AbortController();
  $("live").textContent = "live";
  api.stream(alarms("/v1/operator/alarms/stream"), () => {
    clearTimeout(refetch);
    refetch = setTimeout(() => loadQueue().catch(fail), 150);  // a burst of events: one refetch
  }, ctl.signal);
  setInterval(() => loadQueue().catch(() => {}), 15000);  // belt and braces if the stream stalls
  setInterval(tick, 1000);
}

async function loadQueue() {
  try { queue = await api.get(alarms("/v1/operator/alarms?limit=200")); }
  catch (err) {
    if (err.status === 404) err.message = "The alarm service is not available on this server.";
    throw err;
  }
  if (!Array.isArray(queue)) queue = queue.items || [];
  $("queue-count").textContent = `(${queue.length})`;
  $("queue").replaceChildren(...queue.map((a) => {
    const row = el("tr", { "data-alarm": a.id, tabindex: "0", class: a.id === selected ? "selected" : null,
                           "aria-selected": String(a.id === selected),
                           onclick: () => select(a.id), onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(a.id); } } },
      el("td", {}, el("span", { class: `sev sev-${a.severity}` }, a.severity)),
      el("td", {}, `${a.type.replaceAll("_", " ")}`, el("br"), el("span", { class: "muted" }, `${a.device_id}${a.sensor ? " · " + a.sensor : ""} · ${a.state.replaceAll("_", " ")}`)),
      el("td", { class: "age", "data-since": a.raised_at }, age((Date.now() - Date.parse(a.raised_at)) / 1000)),
      el("td", { class: "customer" }, a.customer_name ?? a.owner ?? "—", el("br"),
        el("span", { class: "muted address" }, a.address ? addressLine(a.address) : place(a))),
      el("td", { class: "timer", "data-next": a.acknowledged ? "" : (a.next_step_at || "") }, ""));
    return row;
  }));
  if (!queue.length) $("queue").append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No open alarms.")));
  tick();
  if (selected !== null) {
    if (queue.some((a) => a.id === selected)) await showDetail(selected);
    else { selected = null; $("detail").hidden = true; marker.clearLayers(); }
  }
}

function place(a) { return a.lat != null ? `${a.lat.toFixed(5)}, ${a.lon.toFixed(5)}` : "no position"; }
function addressLine(ad) { return `${ad.street}, ${ad.postal_code} ${ad.city}`; }
function tel(phone) { return el("a", { href: `tel:${phone}` }, phone); }

// Ages and escalation countdowns move every second without asking the server.
function tick() {
  const now = Date.now();
  for (const td of document.querySelectorAll("td.age")) td.textContent = age((now - Date.parse(td.dataset.since)) / 1000);
  for (const td of document.querySelectorAll("td.timer")) {
    if (!td.dataset.next) { td.textContent = "stopped"; td.classList.remove("overdue"); continue; }
    const left = (Date.parse(td.dataset.next) - now) / 1000;
    td.textContent = left >= 0 ? `next in ${age(left)}` : `due ${age(-left)} ago`;
    td.classList.toggle("overdue", left < 0);
  }
}

async function select(id) {
  selected = id;
  for (const tr of document.querySelectorAll("#queue tr")) {
    const on = Number(tr.dataset.alarm) === id;
    tr.classList.toggle("selected", on);
    tr.setAttribute("aria-selected", String(on));
  }
  await showDetail(id).catch(fail);
}

async function showDetail(id) {
  const a = await api.get(alarms(`/v1/operator/alarms/${id}`));
  $("detail").hidden = false;
  $("h-detail").textContent = `Alarm ${a.id}: ${a.type.replaceAll("_", " ")} (${a.severity})`;
  const facts = [["Device", `${a.device_id} (${a.kind})${a.sensor ? ", sensor " + a.sensor : ""}`], ["Customer", a.customer_name ? `${a.customer_name} (${a.owner})` : a.owner ?? "—"],
                 ["State", a.state.replaceAll("_", " ")], ["Raised", when(a.raised_at)], ["Reports", a.count],
                 ["Assignee", a.assignee ?? "nobody"], ["Escalation stage", a.escalation_level],
                 ["Customer says", a.customer_feedback ? a.customer_feedback.replaceAll("_", " ") : "—"]];
  $("facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
  $("audit").replaceChildren(...(a.audit || []).map((x) => el("li", {}, `${when(x.at)} ${x.kind.replaceAll("_", " ")} by ${x.actor}`,
    x.detail?.text ? `: ${x.detail.text}` : "")));
  $("ack").disabled = a.acknowledged;
  await Promise.all([showPosition(a), showCustomer(a.owner)]);
}

// Who to call, in order, and where to send help: the customer's profile and devices.
async function showCustomer(owner) {
  const c = owner ? await api.get(alarms(`/v1/operator/customers/${encodeURIComponent(owner)}/alarms?limit=1`)).catch(() => null) : null;
  const p = c?.profile;
  $("customer-none").hidden = Boolean(p);
  $("customer-profile").hidden = !p;
  if (p) {
    $("customer-name").textContent = `${p.display_name} (${p.customer_id})`;
    $("customer-address").textContent = `${p.address.street}, ${p.address.postal_code} ${p.address.city}, ${p.address.country}`;
    $("customer-phone").href = `tel:${p.phone}`;
    $("customer-phone").textContent = p.phone;
    $("customer-language").textContent = `speaks ${p.language}`;
    $("customer-instructions").textContent = p.instructions || "";
    $("customer-instructions").hidden = !p.instructions;
    $("contacts").replaceChildren(...(p.contacts.length ? p.contacts.map((k) => el("li", {},
      `${k.name} (${k.relation}${k.keyholder ? ", has a key" : ""}) `, tel(k.phone)))
      : [el("li", { class: "muted" }, "No contacts on file.")]));
  }
  $("devices").replaceChildren(...(c?.devices || []).map((d) => el("li", {}, `${d.device_id} · ${d.kind} · ${d.status}`)));
}

async function showPosition(a) {
  marker.clearLayers();
  let pos = a.lat != null ? { lat: a.lat, lon: a.lon } : null;
  if (!pos && a.kind === "car") pos = await api.get(`/v1/vehicles/${encodeURIComponent(a.device_id)}/position`).catch(() => null);
  if (!pos && a.kind === "pet") pos = await api.get(`/v1/pets/${encodeURIComponent(a.device_id)}/position`).catch(() => null);
  let label = `${a.device_id}: ${a.type.replaceAll("_", " ")}`;
  let where = "Last position";
  if (!pos && a.address?.location) {   // a home kit reports no position: its place is the customer's address
    pos = a.address.location;
    label += ` at ${a.address.street}`;
    where = "At the customer's address";
  }
  $("position").textContent = pos ? `${where} ${pos.lat.toFixed(5)}, ${pos.lon.toFixed(5)}` : "No known position for this device.";
  if (!pos) return;
  L.circleMarker([pos.lat, pos.lon], { radius: 10, color: "#8c1010", fillColor: "#f0b400", fillOpacity: 1, weight: 3 })
    .bindTooltip(label, { permanent: true, direction: "top" }).addTo(marker);
  map.setView([pos.lat, pos.lon], 16);
}

async function act(path, body = {}) {
  if (selected === null) return;
  try {
    await api.post(alarms(`/v1/operator/alarms/${selected}/${path}`), { operator: account.username, ...body });
    await loadQueue();
    say(status, `Alarm ${path === "notes" ? "note added" : path.replace(/e?$/, "ed")}.`, "ok");
  } catch (err) { fail(err); }
}

$("claim").addEventListener("click", () => act("claim"));
$("ack").addEventListener("click", () => act("acknowledge"));
$("note").addEventListener("click", () => {
  const text = $("note-text").value.trim();
  if (!text) return say(status, "Write the note first.", "error");
  act("notes", { text }).then(() => { $("note-text").value = ""; });
});
$("resolve").addEventListener("click", () => {
  const note = $("note-text").value.trim() || undefined;
  act("resolve", { outcome: $("outcome").value, note });
});

