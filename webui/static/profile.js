// The customer's profile in the app: name, phone, address and the contacts the assistance centre calls,
// in order (GET/PUT /v1/account/profile). The server validates; its refusals are shown by the field.
import { el, say } from "/static/ui/common.js";

const MAX_CONTACTS = 5;

export class ProfileForm {
  constructor({ api, form, contacts, add, result }) {
    Object.assign(this, { api, form, contacts, add, result });
    this.location = null;    // kept while the address stays the same
    this.address = "";
    add.addEventListener("click", () => this.addContact());
    form.addEventListener("submit", (e) => { e.preventDefault(); this.save(); });
  }

  async load() {
    let p = null;
    try { p = await this.api.get("/v1/account/profile"); }
    catch (err) { if (err.status !== 404) throw err; }
    this.show(p);
  }

  show(p) {
    const f = this.form.elements;
    for (const name of ["display_name", "phone", "email", "instructions"]) f[name].value = p?.[name] ?? "";
    for (const name of ["street", "postal_code", "city"]) f[name].value = p?.address[name] ?? "";
    f.country.value = p?.address.country ?? "FI";
    f.language.value = p?.language ?? "fi";
    this.location = p?.address.location ?? null;
    this.address = this.addressKey();
    this.contacts.replaceChildren();
    for (const c of p?.contacts ?? []) this.addContact(c);
    if (!p) { this.addContact(); say(this.result, "No details yet: please fill them in."); }
  }

  addressKey() {
    const f = this.form.elements;
    return [f.street.value, f.postal_code.value, f.city.value, f.country.value].join("|");
  }

  addContact(c = {}) {
    const n = this.contacts.children.length + 1;
    if (n > MAX_CONTACTS) return say(this.result, `At most ${MAX_CONTACTS} contacts.`, "error");
    const input = (name, label, attrs = {}) => el("label", {}, label, el("input", { name, "aria-label": `${label} of contact ${n}`, ...attrs }));
    const li = el("li", { class: "contact" },
      el("div", { class: "row" },
        input("c_name", "Name", { value: c.name ?? "", maxlength: 120 }),
        input("c_phone", "Phone", { value: c.phone ?? "", type: "tel", placeholder: "+358 50 765 4321" }),
        input("c_relation", "Relation", { value: c.relation ?? "", maxlength: 60, placeholder: "daughter, neighbour" }),
        el("label", { class: "check" }, el("input", { name: "c_key", type: "checkbox", "aria-label": `Contact ${n} has a key`, checked: Boolean(c.keyholder) }), "Has a key"),
        el("button", { type: "button", class: "secondary", "aria-label": `Remove contact ${n}`, onclick: () => this.remove(li) }, "Remove")));
    this.contacts.append(li);
  }

  // Remove one contact and number the rest again, so the labels match the calling order.
  remove(li) {
    li.remove();
    const rest = this.readContacts();
    this.contacts.replaceChildren();
    for (const c of rest) this.addContact(c);
  }

  readContacts() {
    return [...this.contacts.querySelectorAll("li.contact")]
      .map((li) => ({ name: li.querySelector("[name=c_name]").value.trim(), phone: li.querySelector("[name=c_phone]").value.trim(),
                      relation: li.querySelector("[name=c_relation]").value.trim(), keyholder: li.querySelector("[name=c_key]").checked }));
  }

  body() {
    const f = this.form.elements;
    const text = (v) => (v.trim() === "" ? null : v.trim());
    const location = this.addressKey() === this.address ? this.location : null;  // a new address: its old pin is wrong
    return {
      display_name: f.display_name.value.trim(), phone: f.phone.value.trim(), email: text(f.email.value),
      language: f.language.value, instructions: text(f.instructions.value),
      address: { street: f.street.value.trim(), postal_code: f.postal_code.value.trim(), city: f.city.value.trim(),
                 country: f.country.value.trim().toUpperCase(), location },
      contacts: this.readContacts().filter((c) => c.name || c.phone || c.relation),
    };
  }

  async save() {
    try {
      this.show(await this.api.put("/v1/account/profile", this.body()));
      say(this.result, "Your details are saved.", "ok");
    } catch (err) {
      const fields = (err.problem?.errors || []).map((e) => e.loc.slice(1).join(" ")).join(", ");
      say(this.result, fields ? `Please check: ${fields}.` : err.message, "error");
    }
  }
}
