// The console's one way to the controller: JSON over fetch with the session in the
// Authorization header (never in a URL: URLs end up in logs), refusals as errors that carry
// their reason code and a sentence for the user (i18n.errorText).

import { errorText } from "./i18n.js";

export const session = { token: null, user: null };

export class ApiError extends Error {
  constructor(status, reason, message) {
    super(errorText(reason, message, status));
    this.status = status;
    this.reason = reason || "";
    this.detail = message || "";
  }
}

export function authHeaders(extra) {
  const headers = Object.assign({ Accept: "application/json" }, extra || {});
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  return headers;
}

async function call(method, path, body, contentType, extra) {
  const headers = authHeaders(extra);
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = contentType || "application/json";
    payload = contentType ? body : JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload });
  } catch {
    throw new ApiError(0, "network", "");
  }
  return res;
}

// JSON answer, or ApiError. `withTotal`: also the X-Total-Count header (paged lists);
// `headers`: more request headers (a share's grant for its camera's timeline).
export async function api(method, path, body, options) {
  const opts = options || {};
  const res = await call(method, path, body, opts.contentType, opts.headers);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, data.reason, data.message);
  if (opts.withTotal) return { items: data, total: Number(res.headers.get("X-Total-Count") || data.length) };
  return data;
}

export async function apiText(path) {
  const res = await call("GET", path);
  if (!res.ok) {
    const data = await res.json().catch(() => ({}));
    throw new ApiError(res.status, data.reason, data.message);
  }
  return res.text();
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
