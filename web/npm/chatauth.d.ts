// Type declarations for @chatauth/sdk. sdk.d.ts is the served SDK's
// chatauth.d.ts (Token, Auth, ErrorCode, ChatauthError, …); the options
// that differ from npm are declared here and take precedence over its.
export * from "./sdk.js";
import type { Auth, InitOptions as ServedInitOptions } from "./sdk.js";

export interface InitOptions extends ServedInitOptions {
  /** Base URL of the chatauth server, e.g. "https://chat.example.com". Required: from npm, the SDK does not come from that server. */
  serverUrl: string;
  /**
   * Where to fetch chatauth.wasm; default: the package's own chatauth.wasm,
   * as Vite or webpack emitted it, or beside the bundle (esbuild).
   * With esbuild's file loader: `import wasmUrl from "@chatauth/sdk/chatauth.wasm"`.
   * A relative URL is resolved against the page, as fetch does. The wasm
   * loads once per page: an init() after the first one keeps it.
   */
  wasmUrl?: string | URL;
}

export function init(options: InitOptions): Promise<Auth>;
