// The console's entry point: signing in and out, and showing one view at a time.
// Views are addressed by the URL's fragment (#/tenant/usage), so moving between them never
// reloads the page (a reload forgets the key: that is how signing out of every tab works).

import {Api, ApiError} from "./api.js";
import {errorText, field, fill, h} from "./dom.js";
import {zone} from "./format.js";
import {VIEWS} from "./views.js";

const TENANT_KEY = /^sk-maas-/;

class Console {
  constructor() {
    this.main = document.getElementById("view");
    this.nav = document.getElementById("nav");
    this.who = document.getElementById("who");
    this.notices = document.getElementById("notice");
    this.session = null;
    this.stopView = null;
    this.shown = null;
    window.addEventListener("hashchange", () => this.route(true));
    document.getElementById("skip").addEventListener("click", (event) => {
      event.preventDefault();
      this.main.focus();
    });
  }

  start() {
    this.signInForm();
  }

  notice(text) {
    const line = h("p", null, text);
    this.notices.append(line);
    setTimeout(() => line.remove(), 6000);
  }

  signInForm(message) {
    this.leaveView();
    this.nav.hidden = true;
    fill(this.who);
    const input = h("input", {id: "key", name: "key", type: "password", autocomplete: "off", spellcheck: "false",
      required: true});
    const status = h("div", {"aria-live": "assertive"}, message ? h("p", null, message) : null);
    const form = h("form", {class: "signin", method: "post", "aria-labelledby": "signin-title"},
      h("h1", {id: "signin-title"}, "Sign in"),
      h("p", null, "Tenants sign in with one of their API keys (", h("code", null, "sk-maas-…"),
        "); operators with the admin key."),
      field("Key", input, "Kept in this page's memory only: reloading or closing the page signs you out."),
      h("button", {type: "submit", class: "primary"}, "Sign in"),
      status);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const key = input.value.trim();
      input.value = "";
      if (!key) {
        fill(status, errorText("Enter a key."));
        return;
      }
      try {
        await this.signIn(key);
      } catch (error) {
        fill(status, errorText(error));
        input.focus();
      }
    });
    fill(this.main, form);
    input.focus();
  }

  async signIn(key) {
    const api = new Api(key);
    const tenant = TENANT_KEY.test(key) || key === "EMPTY";
    if (tenant) {
      const account = await api.get("/v1/account");
      this.session = {role: "tenant", api, account, tenant: account.tenant};
    } else {
      await api.get("/admin/replicas");  // the admin key's check
      this.session = {role: "operator", api};
    }
    this.showWho();
    this.showNav();
    const first = VIEWS.find((v) => v.role === this.session.role);
    const wanted = this.viewFor(window.location.hash);
    const target = wanted && wanted.role === this.session.role ? window.location.hash : `#/${first.role}/${first.id}`;
    if (window.location.hash === target) this.route(true);
    else window.location.hash = target;  // hashchange shows it
  }

  signOut(message) {
    this.session = null;  // the Api object, and the key in it, goes with it
    window.location.hash = "";
    this.signInForm(message || "Signed out.");
  }

  showWho() {
    const s = this.session;
    const identity = s.role === "tenant"
      ? [`Tenant ${s.tenant} · key `, h("code", null, `${s.account.key.prefix}…`)]
      : ["Operator"];
    fill(this.who,
      h("span", {id: "identity"}, identity),
      h("span", {class: "muted"}, `times in ${zone()}`),
      h("button", {type: "button", onclick: () => this.signOut()}, "Sign out"));
  }

  showNav() {
    const items = VIEWS.filter((v) => v.role === this.session.role && (!v.available || v.available(this.session)));
    fill(this.nav, h("ul", null, items.map((v) => h("li", null, h("a", {href: `#/${v.role}/${v.id}`, "data-view": v.id}, v.title)))));
    this.nav.hidden = false;
  }

  viewFor(hash) {
    const [, role, id] = /^#\/([a-z]+)\/([a-z-]+)$/.exec(hash || "") || [];
    return VIEWS.find((v) => v.role === role && v.id === id) || null;
  }

  leaveView() {
    if (this.stopView) this.stopView();
    this.stopView = null;
    this.shown = null;
  }

  async route(moved) {
    if (!this.session) return;
    const hash = window.location.hash;
    if (!hash.startsWith("#/")) return;  // an in-page anchor, not a view
    const view = this.viewFor(hash);
    this.leaveView();
    for (const link of this.nav.querySelectorAll("a")) {
      if (link.getAttribute("href") === hash) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    const heading = h("h1", {tabindex: -1}, view ? view.title : "Not found");
    const body = h("div");
    fill(this.main, heading, body);
    if (moved) heading.focus();
    if (!view) {
      fill(body, h("p", null, "There is no such page. Choose one from the menu."));
      return;
    }
    if (view.role !== this.session.role) {
      heading.textContent = "Not available";
      fill(body, h("p", {class: "error", role: "alert"}, view.role === "operator"
        ? `This page is for operators, and you are signed in as tenant ${this.session.tenant}.`
        : "This page is for tenants: sign in with a tenant's API key to see it."));
      return;
    }
    document.title = `${view.title} · maas-gateway console`;
    this.shown = view;
    const context = {
      api: this.session.api,
      session: this.session,
      notice: (text) => this.notice(text),
      signOut: (message) => this.signOut(message),
    };
    try {
      const stop = await view.render(body, context);
      if (this.shown === view && typeof stop === "function") this.stopView = stop;
      else if (typeof stop === "function") stop();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        this.signOut("The key is no longer accepted; sign in again.");
        return;
      }
      if (error instanceof ApiError && error.code === "key_revoked") {
        this.signOut("This key has been revoked; sign in with another one.");
        return;
      }
      fill(body, errorText(error));
    }
  }
}

new Console().start();
