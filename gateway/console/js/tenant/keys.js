// Tenant "Keys": the tenant's keys, a form to create one (the secret shown once) and revocation.
// Only a manager key (one without restrictions of its own) may do this; the gateway enforces it.

import {fill, h} from "../dom.js";
import {keyForm, keyTable} from "../keys_ui.js";

export default {
  role: "tenant",
  id: "keys",
  title: "API keys",
  async render(root, {api, session, signOut, notice}) {
    if (!session.account.key.manager) {
      fill(root,
        h("p", null, "The key you signed in with is restricted (to some models, or by limits or a budget of its own), ",
          "so it cannot see or manage your tenant's keys. Sign in with a key without restrictions of its own, ",
          "or ask your operator."));
      return undefined;
    }
    const [models] = await Promise.all([api.get("/v1/models")]);
    const names = [...new Set(models.data.map((m) => m.root))];
    const list = h("div");

    async function showKeys() {
      const keys = await api.get("/v1/keys");
      fill(list, keyTable({
        caption: `Keys of tenant ${session.tenant}`,
        keys: [...keys.data].reverse(),
        id: "keys-table",
        onRevoke: async (key) => {
          await api.del(`/v1/keys/${encodeURIComponent(key.id)}`);
          if (key.current) {
            signOut("You revoked the key you were signed in with.");
            return;
          }
          notice(`Key ${key.name || key.prefix} revoked.`);
          await showKeys();
        },
      }));
    }

    fill(root,
      h("h2", null, "Create a key"),
      h("p", null, "A key with limits, a budget or a list of models is restricted: it can call the API but not manage keys. ",
        "Your tenant's own limits and budget apply to every key as well."),
      keyForm({
        models: names,
        withTenant: false,
        onCreate: async (body) => {
          const created = await api.post("/v1/keys", body);
          await showKeys();
          return created;
        },
      }),
      h("h2", null, "Keys"),
      list);
    await showKeys();
    return undefined;
  },
};
