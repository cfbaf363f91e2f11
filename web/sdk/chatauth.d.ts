// Type declarations for chatauth.js, the chatauth WebAssembly SDK.

export interface InitOptions {
  /** Base URL of the chatauth server; default: the origin chatauth.js was loaded from. */
  serverUrl?: string;
  /** The widget's OAuth client_id (public client with this site in allowed_origins). */
  clientId: string;
  /** "cookie" (default): POST /customer/token; "redirect": /customer/authorize and handleRedirect(). */
  flow?: "cookie" | "redirect";
  /** Where /customer/authorize sends the visitor back (redirect flow); must be registered exactly. */
  redirectUri?: string;
  /** Seconds before expiry to refresh (default 300; at most half the token's lifetime). */
  refreshMargin?: number;
}

export interface Token {
  accessToken: string;
  tokenType: "Bearer";
  /** Milliseconds since the epoch, measured on this machine from the server's expires_in. */
  expiresAt: number;
  entityId: string;
  scope: string;
}

/** Errors are Error objects with a stable code. */
export type ErrorCode =
  | "state_mismatch" | "access_denied" | "network" | "invalid_client" | "invalid_token"
  | "invalid_request" | "server_error" | "rate_limited" | "no_token";

export interface ChatauthError extends Error {
  code: ErrorCode;
}

export interface Auth {
  getToken(): Promise<Token>;
  hasToken(): boolean;
  fetch(path: string | URL, init?: RequestInit): Promise<Response>;
  handleRedirect(url?: string): Promise<Token>;
  onTokenChange(cb: (token: Token | null) => void): void;
  invalidate(): void;
  refreshCount(): number;
}

export function init(options: InitOptions): Promise<Auth>;
