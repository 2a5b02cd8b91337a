// Every view of the console, in menu order; each says which role may see it.

import fleet from "./operator/fleet.js";
import revenue from "./operator/revenue.js";
import routing from "./operator/routing.js";
import scorecard from "./operator/scorecard.js";
import tenants from "./operator/tenants.js";
import keys from "./tenant/keys.js";
import models from "./tenant/models.js";
import overview from "./tenant/overview.js";
import playground from "./tenant/playground.js";
import responses from "./tenant/responses.js";
import usage from "./tenant/usage.js";

export const VIEWS = Object.freeze([
  overview, usage, keys, models, playground, responses,
  fleet, scorecard, routing, revenue, tenants,
]);
