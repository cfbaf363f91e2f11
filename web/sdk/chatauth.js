// chatauth.js — the chatauth WebAssembly SDK as an ES module.
//
//   import { init } from "https://chat.example.com/web/dist/chatauth.js";
//   const auth = await init({ clientId: "…" });
//   const res = await auth.fetch("/customer/api/v1/me");
//
// The token logic runs in Go (chatauth.wasm); this file loads it, lends it
// fetch and IndexedDB, signs the DPoP proofs with WebCrypto, and wraps
// fetch and the event stream for the app. What can be done here is done
// here: every Go function weighs about a kilobyte of the wasm bundle, and
// the browser's fetch, JSON and crypto.subtle are free. See docs/sdk.md.
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
// only; the access token never leaves memory. One connection serves the
// page until the browser closes it.
let opened;
function db() {
  if (!opened) {
    opened = new Promise((resolve, reject) => {
      const req = indexedDB.open("chatauth", 1);
      req.onupgradeneeded = () => req.result.createObjectStore("kv");
      req.onsuccess = () => {
        const d = req.result;
        d.onclose = () => { opened = undefined; };
        d.onversionchange = () => { d.close(); opened = undefined; };
        resolve(d);
      };
      req.onerror = () => reject(req.error);
    });
    opened.catch(() => { opened = undefined; });
  }
  return opened;
}

// DPoP (RFC 9449, docs/dpop.md): the tokens are bound to an ES256 key the
// browser made as non-extractable, so a token lifted out of the page is
// refused anywhere else. The key pair is kept in IndexedDB beside the
// refresh token (structured clone stores a CryptoKey without exposing
// it), one per server and client, shared by the site's tabs.
const enc = new TextEncoder();
function b64url(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
const b64json = (v) => b64url(enc.encode(JSON.stringify(v)));

// dpopKey signs proofs with the key stored under name, made on first use.
function dpopKey(name) {
  let held; // Promise of {key, head}: the private key and the proof's encoded header
  let spare; // Promise of a key pair made ahead (warm), or of null
  const kv = async (mode, fn) => {
    const d = await db();
    return new Promise((resolve, reject) => {
      const tx = d.transaction("kv", mode);
      let out;
      fn(tx.objectStore("kv"), (v) => { out = v; });
      tx.oncomplete = () => resolve(out);
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
  };
  const stored = () => kv("readonly", (st, set) => { st.get(name).onsuccess = (e) => set(e.target.result); });
  const generate = () => crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  // load reads the stored key pair, or stores a new one. The token
  // requests run under the SDK's cross-tab lock, so one tab makes it; the
  // get-or-put in one transaction keeps a single key even where Web Locks
  // are missing.
  async function load() {
    let pair = await stored();
    if (!pair) {
      const made = (await spare?.catch(() => null)) || (await generate());
      spare = undefined;
      pair = await kv("readwrite", (st, set) => {
        st.get(name).onsuccess = (e) => {
          set(e.target.result || made);
          if (!e.target.result) st.put(made, name);
        };
      });
    }
    // A public key is always exportable; RFC 7638's members only.
    const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
    return { key: pair.privateKey, head: b64json({ typ: "dpop+jwt", alg: "ES256", jwk: { kty, crv, x, y } }) };
  }
  return {
    // warm opens the database and, when no key is stored yet, makes one
    // while the wasm compiles; only load, inside the lock, stores it.
    warm() {
      spare = stored().then((pair) => (pair ? null : generate()));
      spare.catch(() => {});
    },
    // proof signs a proof for a request; access, on a resource request, is
    // named by its hash (ath). fresh reads the stored key again: the token
    // requests do, inside the lock, so a key another tab replaced (at a
    // logout) is picked up before anything is bound to it.
    async proof(method, url, nonce, access, fresh) {
      if (fresh || !held) {
        held = load();
        held.catch(() => { held = undefined; });
      }
      const { key, head } = await held;
      const u = new URL(url);
      const claims = { jti: b64url(crypto.getRandomValues(new Uint8Array(16))), htm: method, htu: u.origin + u.pathname, iat: Math.floor(Date.now() / 1000) };
      if (nonce) claims.nonce = nonce;
      if (access) claims.ath = b64url(await crypto.subtle.digest("SHA-256", enc.encode(access)));
      const input = head + "." + b64json(claims);
      return input + "." + b64url(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, enc.encode(input)));
    },
    // forget deletes the key (logout): the next visitor gets a new one.
    async forget() {
      held = undefined;
      await host.idbSet(name, null);
    },
  };
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
};

// post is the core's one request: JSON in, {status, data, nonce} out, data
// undefined when the answer is not JSON, null for a 204, nonce its
// DPoP-Nonce. access goes under scheme ("Bearer" or "DPoP"); with a key,
// the request carries a proof signed with nonce. A network failure
// (offline, DNS, a CORS refusal) rejects; a proof that could not be
// signed is status 0.
async function post(key, url, body, access, scheme, nonce) {
  const headers = { "Content-Type": "application/json" };
  if (access) headers.Authorization = scheme + " " + access;
  if (key) {
    try {
      headers.DPoP = await key.proof("POST", url, nonce, scheme === "DPoP" ? access : "", true);
    } catch (e) {
      return { status: 0, data: { error: "dpop_unavailable", message: "cannot keep a DPoP key: " + e } };
    }
  }
  const res = await fetch(url, { method: "POST", credentials: "include", cache: "no-store", headers, body: JSON.stringify(body) });
  const data = res.status === 204 ? null : await res.json().catch(() => undefined);
  return { status: res.status, data, nonce: res.headers.get("DPoP-Nonce") || "" };
}

// fetch uppercases these methods, and only these; the proof names the
// method as sent.
const methodOf = (m = "GET") => (/^(delete|get|head|options|post|put)$/i.test(m) ? m.toUpperCase() : m);

// readEvents parses a text/event-stream body (the HTML standard's rules
// for the fields data, event and id; retry and comments are ignored) and
// calls emit with {id, event, data} for each event; it resolves when the
// body ends.
async function readEvents(body, emit) {
  const reader = body.getReader(), text = new TextDecoder();
  let buf = "", data = [], event = "", id = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      // A CR that ends the chunk may be half of a CRLF: it waits.
      const lines = (buf + text.decode(value, { stream: true })).split(/\r\n|\r(?!$)|\n/);
      buf = lines.pop();
      for (const line of lines) {
        if (line === "") {
          // emit returns false to stop reading (the stream is over).
          if (data.length && !emit({ id, event: event || "message", data: data.join("\n") })) return;
          data = [];
          event = "";
          continue;
        }
        const i = line.indexOf(":");
        if (i === 0) continue;
        const field = i < 0 ? line : line.slice(0, i);
        const v = i < 0 ? "" : line.slice(line[i + 1] === " " ? i + 2 : i + 1);
        if (field === "data") data.push(v);
        else if (field === "event") event = v;
        else if (field === "id" && !v.includes("\0")) id = v;
      }
    }
  } finally {
    reader.cancel().catch(() => {}); // closes the connection
  }
}

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
  const { clientId, flow = "cookie", redirectUri = "", refreshMargin = 300, dpop = true } = options;
  if (typeof clientId !== "string" || clientId === "") throw fail("invalid_request", "init() needs clientId (console → OAuth clients)");
  if (flow !== "cookie" && flow !== "redirect") throw fail("invalid_request", 'flow must be "cookie" or "redirect"');
  if (typeof dpop !== "boolean") throw fail("invalid_request", "dpop must be true (the default) or false");
  // No silent downgrade to bearer tokens: the app opts out, or learns why.
  if (dpop && !(globalThis.crypto?.subtle && globalThis.indexedDB)) {
    throw fail("dpop_unavailable", "this browser cannot keep a DPoP key: it needs WebCrypto (crypto.subtle, only on https or localhost) and IndexedDB; init({ dpop: false }) uses bearer tokens instead");
  }
  const identity = siteIdentity(options.identity);
  const serverUrl = (options.serverUrl || new URL(import.meta.url).origin).replace(/\/+$/, "");
  const key = dpop ? dpopKey("dpop:" + serverUrl + ":" + clientId) : null;
  key?.warm();
  const make = await load();
  const core = make({ serverUrl, clientId, flow, redirectUri, refreshMargin, identity }, {
    ...host,
    post: (url, body, access, scheme, nonce) => post(key, url, body, access, scheme, nonce),
    dpopForget: async () => { await key?.forget(); },
  });
  // The resource server's latest DPoP-Nonce, should it ask for one (ours
  // asks only at the token endpoint, whose nonce the core keeps).
  let resourceNonce = "";
  const serverOrigin = new URL(serverUrl + "/").origin;

  // send makes a request with the token: under the DPoP scheme and with a
  // fresh proof when the token is bound to this browser's key. Asked for a
  // nonce it signs it and sends again, once; after any other 401 it drops
  // the token, gets a new one and sends again, once (sdk.Resend decides).
  async function send(url, opts) {
    // The visitor's token goes to its own server only: an absolute or
    // //host path must not carry it (and its proof) anywhere else.
    if (url.origin !== serverOrigin) throw fail("invalid_request", "auth.fetch and auth.events call " + serverOrigin + " only, not " + url.origin);
    const method = methodOf(opts.method);
    const done = new Set();
    for (;;) {
      const t = await core.getToken();
      const headers = new Headers(opts.headers || {});
      headers.set("Authorization", t.tokenType + " " + t.accessToken);
      if (t.tokenType === "DPoP") {
        if (!key) throw fail("dpop_unavailable", "a DPoP-bound token reached an SDK made with dpop: false");
        try {
          headers.set("DPoP", await key.proof(method, url, resourceNonce, t.accessToken, false));
        } catch (e) {
          throw fail("dpop_unavailable", "cannot keep a DPoP key: " + e);
        }
      }
      const res = await globalThis.fetch(url, { ...opts, headers });
      const nonce = res.headers.get("DPoP-Nonce") || "";
      if (nonce) resourceNonce = nonce;
      const next = core.resend(res.status, res.headers.get("WWW-Authenticate") || "", nonce);
      if (!next || done.has(next)) return res;
      done.add(next);
      if (next === "token") core.invalidate();
    }
  }

  const auth = {
    getToken: () => core.getToken(),
    hasToken: () => core.hasToken(),
    handleRedirect: (url = location.href) => core.handleRedirect(url),
    onTokenChange: (cb) => core.onTokenChange(cb),
    invalidate: () => core.invalidate(),
    // logout ends the visitor's chatauth session on the server and in
    // every tab of this site; the next getToken() starts over.
    logout: () => core.logout(),
    // fetch adds the token (and its DPoP proof); on a 401 it drops the
    // token, gets a new one and tries once more. Relative paths are
    // resolved against serverUrl; other origins are refused.
    fetch: (path, opts = {}) => send(new URL(path, serverUrl + "/"), opts),
    // events follows a server-sent event stream of the customer API with
    // fetch, which, unlike EventSource, sends the token in a header (and
    // the DPoP proof), never in the URL. It reconnects after the last
    // event id: at once with a fresh token when the server ends the stream
    // for its token, after a backoff when the connection fails. Any other
    // refusal (404, identity_required) ends it. onError hears of every
    // failure, with error.retrying saying which.
    events(path, { onMessage, onOpen, onError, lastEventId = "" } = {}) {
      const url = new URL(path, serverUrl + "/");
      let last = String(lastEventId ?? ""), ctl, closed = false, backoff = 1000;
      (async () => {
        while (!closed) {
          ctl = new AbortController();
          let wait;
          try {
            const headers = { Accept: "text/event-stream" };
            if (last !== "") headers["Last-Event-ID"] = last;
            const res = await send(url, { headers, cache: "no-store", signal: ctl.signal });
            if (!res.ok) {
              const body = await res.json().catch(() => null);
              throw Object.assign(core.error(res.status, body?.error || "", body?.message || "the event stream answered " + res.status), { status: res.status });
            }
            backoff = 1000;
            onOpen?.();
            await readEvents(res.body, (ev) => {
              if (ev.id !== "") last = ev.id;
              if (ev.event !== "end") {
                // The app's handler throwing is the app's error, not the stream's.
                try { onMessage?.(ev); } catch (err) { setTimeout(() => { throw err; }); }
                return true;
              }
              // The server ended the stream: its token expired or was
              // revoked, or the server is restarting. Reconnect, with a new
              // token (a revoked one is dropped first).
              let reason = "";
              try { reason = JSON.parse(ev.data).reason; } catch {}
              if (reason === "revoked") core.invalidate();
              wait = reason === "shutdown" ? 1000 : 0;
              return false;
            });
            if (wait === undefined) throw fail("network", "the event stream was cut");
          } catch (e) {
            if (closed) return;
            const err = e && e.code ? e : fail("network", "the event stream failed: " + ((e && e.message) || e));
            err.status ??= 0;
            // Only what may heal by itself is tried again.
            err.retrying = ["network", "server_error", "rate_limited"].includes(err.code);
            onError?.(err);
            if (!err.retrying) {
              closed = true;
              return;
            }
            wait = backoff;
            backoff = Math.min(backoff * 2, 30000);
          }
          await new Promise((r) => setTimeout(r, wait));
        }
      })();
      return { close() { closed = true; ctl?.abort(); } };
    },
    // How many tokens this tab fetched from the server (diagnostics).
    refreshCount: () => core.refreshCount(),
  };
  return auth;
}
