// chatauth.js — the chatauth WebAssembly SDK as an ES module.
//
//   import { init } from "https://chat.example.com/web/dist/chatauth.js";
//   const auth = await init({ clientId: "…" });
//   const res = await auth.fetch("/customer/api/v1/me");
//
// The token logic runs in Go (chatauth.wasm); this file loads it, lends it
// fetch and IndexedDB, and wraps fetch for the app. What can be done here
// is done here: every Go function weighs about a kilobyte of the wasm
// bundle, and the browser's fetch and JSON are free. See docs/sdk.md.
import "./wasm_exec.js";

// Written by ./build.sh: the content-hashed bundle, cacheable forever.
const WASM_FILE = "__WASM_FILE__";
const wasmURL = new URL(WASM_FILE, import.meta.url);

let loading;
function load() {
  if (!loading) {
    loading = (async () => {
      const go = new globalThis.Go();
      const source = fetch(wasmURL);
      const { instance } = WebAssembly.instantiateStreaming
        ? await WebAssembly.instantiateStreaming(source, go.importObject)
        : await WebAssembly.instantiate(await (await source).arrayBuffer(), go.importObject);
      go.run(instance);
      if (typeof globalThis.__chatauthNew !== "function") throw new Error("chatauth: the wasm bundle did not start");
      return globalThis.__chatauthNew;
    })();
    loading.catch(() => { loading = undefined; });
  }
  return loading;
}

// The customer refresh token lives in IndexedDB, for this site's origin
// only; the access token never leaves memory.
function db() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open("chatauth", 1);
    req.onupgradeneeded = () => req.result.createObjectStore("kv");
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}
const host = {
  // The refresh token record {token, identified}; a bare string was
  // written by an SDK from before identified visitors (an anonymous one).
  async idbGet(key) {
    try {
      const d = await db();
      const v = await new Promise((resolve) => {
        const r = d.transaction("kv").objectStore("kv").get(key);
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => resolve(null);
      });
      if (typeof v === "string") return { token: v, identified: false };
      return v && typeof v.token === "string" ? v : null;
    } catch { return null; } // private mode without IndexedDB: no persistence
  },
  // idbSet(key, null) deletes the record (logout).
  async idbSet(key, value) {
    try {
      const d = await db();
      await new Promise((resolve) => {
        const tx = d.transaction("kv", "readwrite");
        if (value === null) tx.objectStore("kv").delete(key);
        else tx.objectStore("kv").put(value, key);
        tx.oncomplete = resolve;
        tx.onerror = resolve;
      });
    } catch { /* as above */ }
  },
  // post is the core's one request: JSON in, {status, data} out, data
  // undefined when the answer is not JSON, null for a 204. A network
  // failure (offline, DNS, a CORS refusal) rejects.
  async post(url, body, bearer) {
    const headers = { "Content-Type": "application/json" };
    if (bearer) headers.Authorization = "Bearer " + bearer;
    const res = await fetch(url, { method: "POST", credentials: "include", cache: "no-store", headers, body: JSON.stringify(body) });
    const data = res.status === 204 ? null : await res.json().catch(() => undefined);
    return { status: res.status, data };
  },
};

// siteIdentity wraps the site's identity() for the core: always a
// Promise of a string, "" when nobody is signed in.
function siteIdentity(identity) {
  if (identity === undefined || identity === null) return undefined;
  if (typeof identity !== "function") throw fail("invalid_request", "identity must be a function returning the identity token, null, or a Promise of either");
  return async () => {
    const v = await identity();
    if (v === null || v === undefined || v === "") return "";
    if (typeof v !== "string") throw new Error("identity() must return a string or null, not " + typeof v);
    return v;
  };
}

function fail(code, message) {
  const e = new Error("chatauth: " + message);
  e.code = code;
  return e;
}

export async function init(options = {}) {
  const { clientId, flow = "cookie", redirectUri = "", refreshMargin = 300 } = options;
  if (typeof clientId !== "string" || clientId === "") throw fail("invalid_request", "init() needs clientId (console → OAuth clients)");
  if (flow !== "cookie" && flow !== "redirect") throw fail("invalid_request", 'flow must be "cookie" or "redirect"');
  const identity = siteIdentity(options.identity);
  const serverUrl = (options.serverUrl || new URL(import.meta.url).origin).replace(/\/+$/, "");
  const make = await load();
  const core = make({ serverUrl, clientId, flow, redirectUri, refreshMargin, identity }, host);
  const auth = {
    getToken: () => core.getToken(),
    hasToken: () => core.hasToken(),
    handleRedirect: (url = location.href) => core.handleRedirect(url),
    onTokenChange: (cb) => core.onTokenChange(cb),
    invalidate: () => core.invalidate(),
    // logout ends the visitor's chatauth session on the server and in
    // every tab of this site; the next getToken() starts over.
    logout: () => core.logout(),
    // fetch adds the bearer; on a 401 it drops the token, gets a new one
    // and tries once more. Relative paths are resolved against serverUrl.
    async fetch(path, opts = {}) {
      const url = new URL(path, serverUrl + "/");
      const send = async () => {
        const t = await core.getToken();
        const headers = new Headers(opts.headers || {});
        headers.set("Authorization", "Bearer " + t.accessToken);
        return globalThis.fetch(url, { ...opts, headers });
      };
      let res = await send();
      if (res.status === 401) {
        core.invalidate();
        res = await send();
      }
      return res;
    },
    // How many tokens this tab fetched from the server (diagnostics).
    refreshCount: () => core.refreshCount(),
  };
  return auth;
}
