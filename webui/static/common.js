// Shared by the customer app and the console: the API client (OAuth2 password login, Bearer token,
// one refresh on 401), a Server-Sent Events reader that can send the token (EventSource cannot), the
// street map drawn from /v1/map/roads (no tiles), and small formatting helpers.
import * as L from "/static/leaflet/leaflet-src.esm.js";

export { L };
export const HELSINKI = [60.1699, 24.9384];

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export class Api {
  constructor(storageKey) {
    this.key = storageKey;
    const saved = JSON.parse(sessionStorage.getItem(storageKey) || "null");
    this.access = saved?.access || null;
    this.refreshToken = saved?.refresh || null;
  }

  get loggedIn() { return Boolean(this.access); }

  save() {
    sessionStorage.setItem(this.key, JSON.stringify({ access: this.access, refresh: this.refreshToken }));
  }

  async token(form) {
    const r = await fetch("/v1/auth/token", { method: "POST", body: new URLSearchParams(form) });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new ApiError(r.status, body);
    this.access = body.access_token;
    this.refreshToken = body.refresh_token;
    this.save();
  }

  login(username, password) { return this.token({ grant_type: "password", username, password }); }

  logout() {
    if (this.refreshToken) fetch("/v1/auth/revoke", { method: "POST", body: new URLSearchParams({ token: this.refreshToken }) });
    this.access = this.refreshToken = null;
    sessionStorage.removeItem(this.key);
  }

  // fetch with the token; a 401 refreshes the token once and retries. Returns the Response.
  async raw(method, path, { body, type, retry = true } = {}) {
    const headers = { Authorization: `Bearer ${this.access}` };
    let payload = body;
    if (body !== undefined && !(body instanceof Blob) && typeof body !== "string") {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    } else if (type) headers["Content-Type"] = type;
    const r = await fetch(path, { method, headers, body: payload });
    if (r.status === 401 && retry && this.refreshToken) {
      try { await this.token({ grant_type: "refresh_token", refresh_token: this.refreshToken }); }
      catch { this.logout(); throw new ApiError(401, { detail: "session expired: log in again" }); }
      return this.raw(method, path, { body, type, retry: false });
    }
    if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
    return r;
  }

  async get(path) { return (await this.raw("GET", path)).json(); }
  async post(path, body) { return (await this.raw("POST", path, { body })).json(); }
  async put(path, body) { return (await this.raw("PUT", path, { body })).json(); }
  async del(path) { await this.raw("DELETE", path); }

  // Read an SSE stream with the token; calls onEvent(name, data, id) until `signal` aborts. Reconnects
  // after a drop with Last-Event-ID, so nothing is missed.
  async stream(path, onEvent, signal) {
    let lastId = null;
    while (!signal.aborted) {
      try {
        const headers = { Authorization: `Bearer ${this.access}`, Accept: "text/event-stream" };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const r = await fetch(path, { headers, signal });
        if (r.status === 401 && this.refreshToken) {
          await this.token({ grant_type: "refresh_token", refresh_token: this.refreshToken });
          continue;
        }
        if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            let name = "message", data = "", id = null;
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) name = line.slice(6).trim();
              else if (line.startsWith("data:")) data += line.slice(5).trim();
              else if (line.startsWith("id:")) id = line.slice(3).trim();
            }
            if (id) lastId = id;
            if (data) onEvent(name, JSON.parse(data), id);
          }
        }
      } catch (err) {
        if (signal.aborted) return;
        console.warn("stream", path, err);
      }
      await new Promise((ok) => setTimeout(ok, 2000));
    }
  }
}

// The page's #login form and #logout button; ``start`` runs after a login, or at once when this tab is
// already logged in (the tokens live in sessionStorage).
export function session(api, start, fail) {
  document.getElementById("login").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    try {
      await api.login(form.get("username"), form.get("password"));
      e.target.reset();
      await start();
    } catch (err) { fail(err); }
  });
  document.getElementById("logout").addEventListener("click", () => { api.logout(); location.reload(); });
  if (api.loggedIn) start().catch((err) => { api.logout(); fail(err); });
}

const ROAD_STYLE = {
  main: { color: "#b07d19", weight: 3.5 },
  street: { color: "#7a7a7a", weight: 1.6 },
  path: { color: "#a9a9a9", weight: 1, dashArray: "3 3" },
};

// A Leaflet map whose base layer is the street graph of the OSM extract, fetched for the view once
// logged in (map.loadRoads() after a login).
export function streetMap(element, api, { center = HELSINKI, zoom = 15 } = {}) {
  const map = L.map(element, { preferCanvas: true, zoomControl: true, keyboard: true }).setView(center, zoom);
  map.attributionControl.addAttribution("streets © OpenStreetMap contributors");
  const roads = L.geoJSON(null, { style: (f) => ROAD_STYLE[f.properties.class], interactive: false }).addTo(map);
  let pending = null;
  async function load() {
    const b = map.getBounds().pad(0.3);
    const clamp = (v, limit) => Math.max(-limit, Math.min(limit, v)).toFixed(5);
    const box = new URLSearchParams({ west: clamp(b.getWest(), 180), south: clamp(b.getSouth(), 90),
                                      east: clamp(b.getEast(), 180), north: clamp(b.getNorth(), 90),
                                      paths: map.getZoom() >= 16 });
    if (!api.loggedIn) return;
    const data = await api.get(`/v1/map/roads?${box}`).catch(() => null);
    if (!data) return;
    roads.clearLayers();
    roads.addData(data);
    element.dataset.roads = data.status;
    if (data.status === "loading") setTimeout(load, 3000);  // the graph loads in the background
  }
  map.on("moveend", () => { clearTimeout(pending); pending = setTimeout(load, 250); });
  map.loadRoads = load;
  return map;
}

// "12 s", "4 min", "3 h 5 min", "2 d": how long ago, for people.
export function age(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d`;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

export function say(target, text, kind = "info") {
  target.textContent = text;
  target.dataset.kind = kind;
}

export function when(iso) { return new Date(iso).toLocaleString(); }
