// chatauth.js — the entry of @chatauth/sdk, the chatauth SDK from npm.
//
//   import { init } from "@chatauth/sdk";
//   const auth = await init({ serverUrl: "https://chat.example.com", clientId: "…" });
//
// sdk.js is the very module the chatauth server serves at
// /web/dist/chatauth.js (copied by backend/cmd/chatauth-npm), so both
// behave the same. This file adds only what differs once the SDK is
// bundled into an app instead of loaded from the server:
//   - the wasm is this package's chatauth.wasm, not the hashed file beside
//     the served module; init({ wasmUrl }) points elsewhere;
//   - serverUrl is required: the served module defaults to the origin it
//     came from, which here would be the app's own.
import { init as start, useWasm } from "./sdk.js";

// Whatever else the served module exports, so the package and
// chatauth.d.ts (which re-exports sdk.d.ts) stay in step; init below
// takes precedence over sdk.js's.
export * from "./sdk.js";

export async function init(options = {}) {
  if (typeof options.serverUrl !== "string" || options.serverUrl === "") {
    throw fail("invalid_request", "init() needs serverUrl, the chatauth server's base URL: from npm, the SDK does not come from that server");
  }
  // The literal new URL("./chatauth.wasm", import.meta.url) is the form
  // Vite and webpack 5 look for: they emit chatauth.wasm with the app and
  // write its final URL here. esbuild keeps it as it is, so the file must
  // sit beside the bundle (or be passed as wasmUrl). Computed in init, not
  // when the module loads, because import.meta is empty in a non-module
  // (IIFE) bundle and new URL would throw there even for an app that
  // passes wasmUrl.
  useWasm(options.wasmUrl ?? new URL("./chatauth.wasm", import.meta.url));
  return start(options);
}

function fail(code, message) {
  const e = new Error("chatauth: " + message);
  e.code = code;
  return e;
}
