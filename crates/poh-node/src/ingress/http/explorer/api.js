// The node's API, by paths relative to the page, so the explorer works wherever the node is
// served (behind a proxy under a prefix too). The browser sends the credentials it was given
// for the page with every call.

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : "HTTP " + status);
    this.status = status;
    this.code = body && body.error;
  }
}

export function url(path) {
  return new URL(path, document.baseURI).href;
}

/** GET a JSON answer; `ApiError` for any status but 200. */
export async function get(path, signal) {
  const response = await fetch(url(path), { headers: { Accept: "application/json" }, signal });
  let body = null;
  try {
    body = await response.json();
  } catch {
    // An answer that is not JSON (a proxy's error page) is reported by its status.
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** GET, with `null` for a 404. */
export async function find(path, signal) {
  try {
    return await get(path, signal);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

/** GET a text answer (`/metrics`); `ApiError` for any status but 200. */
export async function text(path, signal) {
  const response = await fetch(url(path), { signal });
  if (!response.ok) throw new ApiError(response.status, null);
  return response.text();
}

export const q = encodeURIComponent;
