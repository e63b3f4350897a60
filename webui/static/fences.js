// A small geofence editor for the customer app: polygons (click vertices) and circles (click the centre,
// radius from the form); an existing fence is edited by dragging its vertices or centre, then saved (PUT).
import { L, el, say } from "/static/ui/common.js";

export class FenceEditor {
  constructor({ api, map, list, help, status }) {
    Object.assign(this, { api, map, list, help, status });
    this.layer = L.layerGroup().addTo(map);
    this.draft = L.layerGroup().addTo(map);
    this.drawing = null;        // "polygon" | "circle" | null
    this.editing = null;        // fence id being edited, or null for a new one
    this.points = [];
    const $ = (id) => document.getElementById(id);
    this.name = $("fence-name");
    this.radius = $("fence-radius");
    this.finish = $("draw-finish");
    this.cancelButton = $("draw-cancel");
    $("draw-polygon").addEventListener("click", () => this.begin("polygon"));
    $("draw-circle").addEventListener("click", () => this.begin("circle"));
    this.finish.addEventListener("click", () => this.save());
    this.cancelButton.addEventListener("click", () => this.cancel());
    this.radius.addEventListener("input", () => this.drawDraft());
    map.on("click", (e) => this.click(e.latlng));
  }

  async load() {
    const page = await this.api.get("/v1/geofences?limit=200");
    this.fences = page.features;
    this.layer.clearLayers();
    for (const f of this.fences) this.shape(f).bindTooltip(f.properties.name || `fence ${f.id}`).addTo(this.layer);
    this.list.replaceChildren(...this.fences.map((f) => el("li", { "data-fence": f.id },
      el("strong", {}, f.properties.name || `fence ${f.id}`), ` ${f.geometry.type === "Point" ? `circle ${f.properties.radius_m} m` : "polygon"} `,
      el("button", { type: "button", class: "secondary", onclick: () => this.edit(f) }, "Edit"), " ",
      el("button", { type: "button", class: "danger", onclick: () => this.remove(f) }, "Delete"))));
    if (!this.fences.length) this.list.append(el("li", { class: "muted" }, "No geofences yet."));
  }

  shape(f) {
    const style = { color: "#0b5cad", weight: 2, fillOpacity: 0.08 };
    if (f.geometry.type === "Point") {
      const [lon, lat] = f.geometry.coordinates;
      return L.circle([lat, lon], { radius: f.properties.radius_m, ...style });
    }
    return L.geoJSON(f.geometry, { style });
  }

  begin(kind, fence = null) {
    this.cancel();
    this.drawing = kind;
    this.editing = fence?.id ?? null;
    this.finish.hidden = this.cancelButton.hidden = false;
    this.help.textContent = kind === "polygon"
      ? "Click the map for each corner (three or more), drag a corner to move it, then Save shape."
      : "Click the map for the centre (drag it to move), set the radius, then Save shape.";
  }

  edit(f) {
    if (f.geometry.type === "Point") {
      this.begin("circle", f);
      const [lon, lat] = f.geometry.coordinates;
      this.points = [L.latLng(lat, lon)];
      this.radius.value = f.properties.radius_m;
    } else {
      this.begin("polygon", f);
      this.points = f.geometry.coordinates[0].slice(0, -1).map(([lon, lat]) => L.latLng(lat, lon));
    }
    this.name.value = f.properties.name || "";
    this.drawDraft();
  }

  click(latlng) {
    if (!this.drawing) return;
    if (this.drawing === "circle") this.points = [latlng];
    else this.points.push(latlng);
    this.drawDraft();
  }

  drawDraft() {
    this.draft.clearLayers();
    if (!this.drawing || !this.points.length) return;
    if (this.drawing === "circle") L.circle(this.points[0], { radius: Number(this.radius.value), color: "#f0b400" }).addTo(this.draft);
    else L.polygon(this.points, { color: "#f0b400" }).addTo(this.draft);
    this.points.forEach((p, i) => {
      const handle = L.marker(p, { draggable: true, keyboard: true, title: `corner ${i + 1}`, alt: `corner ${i + 1}` }).addTo(this.draft);
      handle.on("dragend", () => { this.points[i] = handle.getLatLng(); this.drawDraft(); });
    });
  }

  feature() {
    const name = this.name.value.trim() || "My area";
    if (this.drawing === "circle") {
      const [c] = this.points;
      return { type: "Feature", geometry: { type: "Point", coordinates: [c.lng, c.lat] },
               properties: { name, radius_m: Number(this.radius.value) } };
    }
    const ring = this.points.map((p) => [p.lng, p.lat]);
    return { type: "Feature", geometry: { type: "Polygon", coordinates: [[...ring, ring[0]]] }, properties: { name } };
  }

  async save() {
    const need = this.drawing === "circle" ? 1 : 3;
    if (this.points.length < need) return say(this.status, `Click at least ${need} point(s) on the map.`, "error");
    try {
      if (this.editing === null) await this.api.post("/v1/geofences", this.feature());
      else await this.api.put(`/v1/geofences/${this.editing}`, this.feature());
      say(this.status, "Geofence saved.", "ok");
      this.cancel();
      await this.load();
    } catch (err) { say(this.status, err.message, "error"); }
  }

  async remove(f) {
    try {
      await this.api.del(`/v1/geofences/${f.id}`);
      await this.load();
    } catch (err) { say(this.status, err.message, "error"); }
  }

  cancel() {
    this.drawing = null;
    this.editing = null;
    this.points = [];
    this.draft.clearLayers();
    this.finish.hidden = this.cancelButton.hidden = true;
    this.help.textContent = "";
  }
}
