// Type declarations for chatauth.js, the chatauth WebAssembly SDK.

export interface InitOptions {
  /** Base URL of the chatauth server, its CHATAUTH_ISSUER; default: the origin chatauth.js was loaded from. */
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
  /**
   * DPoP (default true): bind the tokens to a non-extractable key this browser
   * keeps in IndexedDB, so a token lifted out of the page is refused elsewhere.
   * Where WebCrypto or IndexedDB are missing, init rejects with
   * "dpop_unavailable"; false uses bearer tokens instead.
   */
  dpop?: boolean;
}

export interface Token {
  accessToken: string;
  /** The Authorization scheme: "DPoP" when the token is bound to this browser's key (a proof goes with it), else "Bearer". */
  tokenType: "Bearer" | "DPoP";
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
  | "invalid_request" | "server_error" | "rate_limited" | "no_token" | "issuer_mismatch"
  | "identity_required" | "invalid_identity_token" | "identity_token_expired" | "identity_unavailable"
  | "dpop_unavailable" | "invalid_dpop_proof";

export interface ChatauthError extends Error {
  code: ErrorCode;
}

/** An event of a server-sent event stream (Auth.events). */
export interface StreamEvent {
  /** The event's id (the customer API: the message id); "" when it has none. */
  id: string;
  /** The event type; "message" when the server named none. */
  event: string;
  data: string;
}

/** A failure of an event stream. */
export interface StreamError extends ChatauthError {
  /** The HTTP status of a refused connection; 0 when there was no answer. */
  status: number;
  /** true: the SDK reconnects by itself (network, 5xx, 429); false: the stream is over. */
  retrying: boolean;
}

export interface StreamHandlers {
  onMessage?(event: StreamEvent): void;
  /** Called on every (re)connection. */
  onOpen?(): void;
  onError?(error: StreamError): void;
  /** Resume after this event id (Last-Event-ID); default: from now on. */
  lastEventId?: string | number;
}

export interface EventStream {
  close(): void;
}

export interface Auth {
  getToken(): Promise<Token>;
  hasToken(): boolean;
  /** fetch with the token (and its DPoP proof) from serverUrl only (another origin rejects with "invalid_request"); on a 401 it gets a new token and tries once more. */
  fetch(path: string | URL, init?: RequestInit): Promise<Response>;
  /**
   * Follows a server-sent event stream of the customer API, e.g.
   * /customer/api/v1/conversations/42/events, with fetch (an EventSource can
   * send neither the token in a header nor the DPoP proof). Reconnects after
   * the last event id, with a fresh token when the server ended the stream.
   */
  events(path: string | URL, handlers?: StreamHandlers): EventStream;
  /**
   * Takes the token (or the error) of a /customer/authorize redirect. Its iss
   * must name serverUrl (RFC 9207); a missing or different one rejects with
   * "issuer_mismatch", as a wrong state rejects with "state_mismatch".
   */
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
