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
  /**
   * Identified visitors: returns a short-lived identity token (a JWT your backend
   * signs for the signed-in user), or null when nobody is signed in on your site
   * (the visitor is then anonymous). Called when the SDK needs a new session,
   * never twice at once across your site's tabs; once more when the token it
   * gave had expired. Throwing fails with code "identity_unavailable".
   */
  identity?: () => string | null | Promise<string | null>;
}

export interface Token {
  accessToken: string;
  tokenType: "Bearer";
  /** Milliseconds since the epoch, measured on this machine from the server's expires_in. */
  expiresAt: number;
  entityId: string;
  scope: string;
  /** true when your site identified the visitor (the same entityId on every device). */
  identified: boolean;
}

/** Errors are Error objects with a stable code. */
export type ErrorCode =
  | "state_mismatch" | "access_denied" | "network" | "invalid_client" | "invalid_token"
  | "invalid_request" | "server_error" | "rate_limited" | "no_token"
  | "identity_required" | "invalid_identity_token" | "identity_token_expired" | "identity_unavailable";

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
  /**
   * Ends the visitor's chatauth session on the server and in every tab of this
   * site (each gets onTokenChange(null)); the next getToken() starts over.
   * Call it when your user signs out. Rejects (code "network") when the server
   * could not be told; the tokens are dropped here all the same.
   */
  logout(): Promise<void>;
  refreshCount(): number;
}

export function init(options: InitOptions): Promise<Auth>;
