// Calls to the gateway's HTTP API with the signed-in key.
// The key lives only in this object's private field, in the page's memory: it is sent as an
// Authorization header (which a browser never attaches by itself, so no other site can make
// the console act), and never written to storage, a cookie or a URL.

/** An error answered by the gateway, in OpenAI's shape. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The gateway answered ${status}.`);
    this.status = status;
    this.code = error.code || null;
    this.type = error.type || null;
    this.param = error.param || null;
  }
}

function url(path, query) {
  const target = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== "") target.searchParams.set(name, value);
  }
  return target;
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return new ApiError(response.status, body);
}

export class Api {
  #key;

  constructor(key) {
    this.#key = key;
  }

  /** The raw response of a request; a non-2xx answer is thrown as an ApiError. */
  async request(method, path, {query, body, signal} = {}) {
    const headers = {authorization: `Bearer ${this.#key}`};
    const init = {method, headers, signal, cache: "no-store", credentials: "omit", redirect: "error"};
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url(path, query), init);
    if (!response.ok) throw await failure(response);
    return response;
  }

  async get(path, query) {
    return (await this.request("GET", path, {query})).json();
  }

  async post(path, body) {
    return (await this.request("POST", path, {body: body ?? {}})).json();
  }

  async put(path, body) {
    return (await this.request("PUT", path, {body})).json();
  }

  async del(path) {
    return (await this.request("DELETE", path)).json();
  }

  /** A response body as a file the browser saves (CSV reports): fetched with the key, never linked. */
  async download(path, query, filename) {
    const blob = await (await this.request("GET", path, {query})).blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = filename;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  }

  /**
   * A streamed completion: resolves once the response starts, with its headers and an async
   * iterator over the parsed `data:` events (ending at [DONE]).
   */
  async stream(path, body, signal) {
    const response = await this.request("POST", path, {body, signal});
    return {headers: response.headers, events: sseEvents(response.body, signal)};
  }
}

async function* sseEvents(stream, signal) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    while (true) {
      const {value, done} = await reader.read();
      if (done) return;
      buffered += decoder.decode(value, {stream: true});
      let end;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        const frame = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (!data) continue;
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  } finally {
    if (signal && signal.aborted) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
