// The customer app: cars with the age of their last fix, Find-Vehicle walking route, trips, certificates,
// car geofences (polygon and circle editor), pets with fences and live track, home kits and alarms, and
// the customer's details for the assistance centre (address, contacts).
import { Api, L, age, el, say, session, streetMap, when } from "/static/ui/common.js";
import { FenceEditor } from "/static/ui/fences.js";
import { ProfileForm } from "/static/ui/profile.js";

const api = new Api("vigil.customer");
const $ = (id) => document.getElementById(id);
const status = $("status");
const map = streetMap($("map"), api);
const layers = { cars: L.layerGroup().addTo(map), route: L.layerGroup().addTo(map), trip: L.layerGroup().addTo(map),
                 pets: L.layerGroup().addTo(map) };
let cars = [];          // last /v1/vehicles items, with `fetched` (ms) to count the age up locally
let account = null;
let here = null;        // [lat, lon] the customer clicked
let hereMarker = null;
const fences = new FenceEditor({ api, map, list: $("fences"), help: $("fence-help"), status });
const profile = new ProfileForm({ api, form: $("profile-form"), contacts: $("profile-contacts"),
                                  add: $("profile-add-contact"), result: $("profile-result") });

function fail(err) { say(status, err.message, "error"); }

map.on("click", (e) => {
  if (fences.drawing) return;
  here = [e.latlng.lat, e.latlng.lng];
  hereMarker?.remove();
  hereMarker = L.circleMarker(e.latlng, { radius: 7, color: "#0b5cad", fillOpacity: 0.9 }).bindTooltip("You").addTo(map);
  say($("find-result"), "Start point set on the map.");
});

// --- login -------------------------------------------------------------------------------------------
session(api, start, fail);

async function start() {
  account = await api.get("/v1/account");
  $("login").hidden = true;
  $("who").hidden = false;
  $("who-name").textContent = `${account.username}`;
  say(status, `Logged in as ${account.username}.`, "ok");
  map.loadRoads();
  await Promise.all([loadCars(), fences.load(), loadPets(), loadHome(), profile.load()]).catch(fail);
  setInterval(() => loadCars().catch(() => {}), 10000);
  setInterval(renderAges, 1000);
}

// --- cars --------------------------------------------------------------------------------------------
async function loadCars() {
  const page = await api.get("/v1/vehicles?limit=100");
  const fetched = Date.now();
  const first = cars.length === 0;
  cars = page.items.map((c) => ({ ...c, fetched }));
  layers.cars.clearLayers();
  const list = $("cars");
  list.replaceChildren();
  for (const car of cars) {
    car.marker = L.circleMarker([car.lat, car.lon], { radius: 9, color: "#14324f", fillColor: "#f0b400", fillOpacity: 1, weight: 3 })
      // names stay on the map for a few cars; with a whole fleet they show on hover / focus
      .bindTooltip(`${car.device_id} · fix ${age(car.age_s)} ago`, { permanent: cars.length <= 12, direction: "top", offset: [0, -8] })
      .addTo(layers.cars);
    list.append(el("li", { "data-car": car.device_id },
      el("strong", {}, car.device_id), " ",
      el("span", { class: "muted" }, `${car.speed_kmh ?? 0} km/h, ignition ${car.ignition ? "on" : "off"}`), el("br"),
      "last fix ", el("span", { class: "car-age", "data-car": car.device_id }, age(car.age_s)), " ago ",
      el("button", { type: "button", class: "secondary", onclick: () => map.setView([car.lat, car.lon], 16) }, "Show"), " ",
      el("button", { type: "button", class: "secondary", onclick: () => loadTrips(car.device_id) }, "Trips")));
  }
  if (!cars.length) list.append(el("li", { class: "muted" }, "No car has sent a position yet."));
  for (const select of [$("find-car"), $("cert-car")]) {
    const keep = select.value;
    select.replaceChildren(...cars.map((c) => el("option", { value: c.device_id }, c.device_id)));
    if (keep) select.value = keep;
  }
  if (first && cars.length) {
    map.setView([cars[0].lat, cars[0].lon], 15);
    $("cert-at").value = localInput(cars[0].ts);
  }
}

function renderAges() {
  const now = Date.now();
  for (const span of document.querySelectorAll(".car-age")) {
    const car = cars.find((c) => c.device_id === span.dataset.car);
    if (!car) continue;
    span.textContent = age(car.age_s + (now - car.fetched) / 1000);
    car.marker.setTooltipContent(`${car.device_id} · fix ${span.textContent} ago`);
  }
}

// --- Find-Vehicle ------------------------------------------------------------------------------------
function browserPosition() {
  return new Promise((ok, no) => {
    if (!navigator.geolocation) return no(new Error("no browser location"));
    navigator.geolocation.getCurrentPosition((p) => ok([p.coords.latitude, p.coords.longitude]), no, { timeout: 5000 });
  });
}

$("find").addEventListener("click", async () => {
  const car = $("find-car").value;
  const out = $("find-result");
  if (!car) return say(out, "No car to find.", "error");
  let from = here;
  if (!from) {
    try { from = await browserPosition(); } catch { return say(out, "Click the map where you are (no browser location).", "error"); }
  }
  try {
    const found = await api.get(`/v1/vehicles/${encodeURIComponent(car)}/find?from_lat=${from[0]}&from_lon=${from[1]}`);
    const r = found.route;
    layers.route.clearLayers();
    const line = L.geoJSON(r.geometry, { style: { color: "#0b5cad", weight: 5, dashArray: r.method === "osm_walking" ? null : "8 8" } }).addTo(layers.route);
    L.circleMarker(from, { radius: 7, color: "#0b5cad", fillOpacity: 0.9 }).bindTooltip("You").addTo(layers.route);
    map.fitBounds(line.getBounds().pad(0.2));
    const minutes = Math.max(1, Math.round(r.walking_time_s / 60));
    say(out, `${Math.round(r.distance_m)} m, about ${minutes} min on foot` +
             (r.method === "osm_walking" ? " along the streets." : ` (straight line: ${r.reason_detail || r.reason}).`), "ok");
  } catch (err) { say(out, err.message, "error"); }
});

// --- trips -------------------------------------------------------------------------------------------
async function loadTrips(car) {
  const list = $("trips");
  try {
    const page = await api.get(`/v1/vehicles/${encodeURIComponent(car)}/trips?limit=20`);
    list.replaceChildren(...page.items.map((t) => {
      const events = Object.entries(t.events).filter(([, n]) => n).map(([k, n]) => `${n} ${k.replaceAll("_", " ")}`).join(", ");
      return el("li", {},
        el("button", { type: "button", class: "secondary", onclick: () => showTrip(t.id) }, `${when(t.start)}`),
        ` ${(t.distance_m / 1000).toFixed(1)} km, ${Math.round(t.duration_s / 60)} min, score ${t.score.toFixed(0)}`,
        el("br"), el("span", { class: "muted" }, events || "no driving events"));
    }));
    if (!page.items.length) list.append(el("li", { class: "muted" }, `${car}: no trips yet.`));
  } catch (err) { fail(err); }
}

async function showTrip(id) {
  const trip = await api.get(`/v1/trips/${id}`).catch(fail);
  if (!trip) return;
  layers.trip.clearLayers();
  const line = L.geoJSON(trip.line, { style: { color: "#6a1b9a", weight: 4 } }).addTo(layers.trip);
  for (const e of trip.driving_events) {
    L.circleMarker([e.lat, e.lon], { radius: 6, color: "#b3261e", fillOpacity: 1 })
      .bindTooltip(`${e.type.replaceAll("_", " ")} (${e.severity})`).addTo(layers.trip);
  }
  map.fitBounds(line.getBounds().pad(0.1));
  say(status, `Trip ${id}: score ${trip.score.toFixed(0)} (smoothness ${trip.sub_scores.smoothness.toFixed(0)}, ` +
              `speed ${trip.sub_scores.speed.toFixed(0)}, time of day ${trip.sub_scores.time_of_day.toFixed(0)}).`, "ok");
}

// --- certificates ------------------------------------------------------------------------------------
function localInput(iso) {  // ISO instant -> value of a datetime-local input, local time
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
}
function localDate(d) {  // Date -> value of a date input, the local calendar day (not UTC's)
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 10);
}
const today = new Date();
$("cert-to").value = localDate(today);
$("cert-from").value = localDate(new Date(today.getTime() - 30 * 86400000));
$("cert-kind").addEventListener("change", () => {
  const fine = $("cert-kind").value === "fine_assist";
  $("cert-at-row").hidden = !fine;
  $("cert-period-row").hidden = fine;
});

function certificateRequest(kind) {
  // The inputs hold local times and days; the API takes instants, so the period runs from the first
  // day's local midnight to the last day's local 23:59:59.
  if (kind === "fine_assist") {
    if (!$("cert-at").value) throw new Error("Pick the moment of the fine.");
    return { kind, at: new Date($("cert-at").value).toISOString() };
  }
  const from = $("cert-from").value, to = $("cert-to").value;
  if (!from || !to) throw new Error("Pick the first and the last day of the period.");
  if (from > to) throw new Error("The first day of the period must not be after the last.");
  return { kind, from: new Date(`${from}T00:00:00`).toISOString(), to: new Date(`${to}T23:59:59`).toISOString() };
}

$("cert-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const car = $("cert-car").value, kind = $("cert-kind").value;
  try {
    const doc = await api.post(`/v1/vehicles/${encodeURIComponent(car)}/certificates`, certificateRequest(kind));
    say(status, `Certificate ${doc.certificate.id} issued.`, "ok");
    await loadCertificates(car);
  } catch (err) { fail(err); }
});
$("cert-car").addEventListener("change", () => loadCertificates($("cert-car").value));

async function loadCertificates(car) {
  const page = await api.get(`/v1/vehicles/${encodeURIComponent(car)}/certificates?limit=10`);
  $("certs").replaceChildren(...page.items.map((c) => el("li", { "data-cert": c.id },
    el("strong", {}, c.kind.replaceAll("_", " ")), ` ${when(c.created_at)}`, el("br"),
    el("button", { type: "button", onclick: () => download(c.pdf_url, `${c.id}.pdf`) }, "Download PDF"), " ",
    el("button", { type: "button", class: "secondary", onclick: () => download(c.json_url, `${c.id}.json`) }, "JSON"), " ",
    el("button", { type: "button", class: "secondary", onclick: () => verifyStored(c) }, "Verify"))));
}

async function download(url, name) {
  try {
    const blob = await (await api.raw("GET", url)).blob();
    const a = el("a", { href: URL.createObjectURL(blob), download: name });
    document.body.append(a);
    a.click();
    a.remove();
  } catch (err) { fail(err); }
}

async function verify(blob, type) {
  const out = $("verify-result");
  try {
    const r = await fetch("/v1/certificates/verify", { method: "POST", headers: { "Content-Type": type }, body: blob });
    const v = await r.json();
    if (v.valid) {
      const c = v.certificate;
      say(out, `Valid ${v.format.toUpperCase()}: certificate ${c.id} (${c.kind.replaceAll("_", " ")}) for ${c.vehicle_id}, signed by ${v.key_ids.join(", ")}.`, "ok");
    } else say(out, `Not valid (${v.format}): ${v.reason}${v.detail ? ": " + v.detail : ""}.`, "error");
  } catch (err) { say(out, err.message, "error"); }
}

async function verifyStored(c) {
  const blob = await (await api.raw("GET", c.pdf_url)).blob();
  await verify(blob, "application/pdf");
}

$("verify-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (file) await verify(file, file.name.endsWith(".json") ? "application/json" : "application/pdf");
});

// --- pets --------------------------------------------------------------------------------------------
const tracks = new Map();  // pet id -> AbortController of its live stream
async function loadPets() {
  const page = await api.get("/v1/devices?kind=pet&limit=100");
  layers.pets.clearLayers();
  const items = [];
  for (const pet of page.items) {
    const id = pet.device_id;
    const fenceList = await api.get(`/v1/pets/${encodeURIComponent(id)}/fences`).catch(() => ({ features: [] }));
    for (const f of fenceList.features) {
      L.circle([f.geometry.coordinates[1], f.geometry.coordinates[0]], { radius: f.properties.radius_m, color: "#1e6b34", fill: false })
        .bindTooltip(`${id}: ${f.properties.name}`).addTo(layers.pets);
    }
    const pos = await api.get(`/v1/pets/${encodeURIComponent(id)}/position`).catch(() => null);
    if (pos) L.circleMarker([pos.lat, pos.lon], { radius: 7, color: "#1e6b34", fillOpacity: 1 }).bindTooltip(id).addTo(layers.pets);
    items.push(el("li", { "data-pet": id }, el("strong", {}, id), ` ${fenceList.features.length} fence(s), `,
      pos ? `last fix ${age(pos.age_s)} ago ` : "no position yet ",
      el("button", { type: "button", class: "secondary", "aria-pressed": "false", onclick: (e) => toggleTrack(id, e.target) }, "Live track")));
  }
  $("pets").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "No pet trackers.")]));
}

function toggleTrack(id, button) {
  if (tracks.has(id)) {
    tracks.get(id).abort();
    tracks.delete(id);
    button.setAttribute("aria-pressed", "false");
    button.textContent = "Live track";
    return;
  }
  const ctl = new AbortController();
  tracks.set(id, ctl);
  button.setAttribute("aria-pressed", "true");
  button.textContent = "Stop tracking";
  const line = L.polyline([], { color: "#1e6b34", weight: 4 }).addTo(layers.pets);
  button.dataset.points = 0;
  api.stream(`/v1/pets/${encodeURIComponent(id)}/track/stream`, (name, fix) => {
    if (name !== "fix") return;
    line.addLatLng([fix.lat, fix.lon]);
    button.dataset.points = line.getLatLngs().length;  // the canvas has no DOM: tests and tools read this
    map.panTo([fix.lat, fix.lon]);
  }, ctl.signal);
}

// --- home kits and alarms ----------------------------------------------------------------------------
async function loadHome() {
  const page = await api.get("/v1/devices?kind=home&limit=100");
  $("homes").replaceChildren(...page.items.map((h) => el("li", {}, el("strong", {}, h.device_id), ` ${h.status}`)));
  if (!page.items.length) $("homes").append(el("li", { class: "muted" }, "No home kit."));
  let history = null;
  for (const path of ["/v1/alarms", `/v1/customers/${encodeURIComponent(account.customer_id)}/alarms`]) {
    history = await api.get(path).catch(() => null);
    if (history) { history.path = path; break; }
  }
  if (!history) return $("alarms").replaceChildren(el("li", { class: "muted" }, "Alarm history is not available."));
  const alarms = history.alarms || history.items || [];
  $("alarms").replaceChildren(...alarms.map((a) => el("li", { "data-alarm": a.id },
    el("span", { class: `sev sev-${a.severity}` }, a.severity), ` ${a.type.replaceAll("_", " ")} on ${a.device_id}, ${when(a.raised_at)}`,
    el("br"), el("span", { class: "muted" }, `${a.state.replaceAll("_", " ")}${a.outcome ? ", " + a.outcome.replaceAll("_", " ") : ""}`),
    a.customer_feedback ? el("span", { class: "muted" }, ` — you said: ${a.customer_feedback.replaceAll("_", " ")}`)
      : el("button", { type: "button", class: "secondary", onclick: () => itWasMe(history.path, a.id) }, "It was me"))));
  if (!alarms.length) $("alarms").append(el("li", { class: "muted" }, "No alarms."));
}

async function itWasMe(base, id) {
  try {
    await api.post(`${base}/${id}/feedback`, { feedback: "it_was_me" });
    say(status, "Thank you: the assistance centre sees that it was you.", "ok");
    await loadHome();
  } catch (err) { fail(err); }
}

