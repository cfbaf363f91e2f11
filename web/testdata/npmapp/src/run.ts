// What both pages do: init the SDK from npm against the chatauth server
// named in the query string (?server=…&client=…), get a visitor token,
// and leave the outcome in window.result for the test to read.
import { init, type Auth, type ChatauthError, type ErrorCode, type InitOptions, type Token } from "@chatauth/sdk";

export interface Result {
  entityId: string;
  identified: boolean;
  expiresInMs: number;
  /** The code init() failed with when serverUrl was left out. */
  noServerUrl: ErrorCode | "";
  /** "code: message" when getting the token failed. */
  error: string;
}

declare global {
  interface Window {
    result?: Result;
  }
}

function isChatauthError(e: unknown): e is ChatauthError {
  return e instanceof Error && typeof (e as Partial<ChatauthError>).code === "string";
}

// Hints a real app would show, keyed by ErrorCode: tsc fails when a code
// here is no longer one the package declares.
const hints: Partial<Record<ErrorCode, string>> = {
  invalid_client: "the client or its allowed_origins is wrong",
  network: "the chatauth server did not answer",
  invalid_request: "a bad option",
};

export async function run(extra: Pick<InitOptions, "wasmUrl"> = {}): Promise<Result> {
  const q = new URLSearchParams(location.search);
  const options: InitOptions = { serverUrl: q.get("server") ?? "", clientId: q.get("client") ?? "", ...extra };
  const result: Result = { entityId: "", identified: false, expiresInMs: 0, noServerUrl: "", error: "" };
  try {
    // From npm there is no server to default to: the types require
    // serverUrl (tsc fails if this line stops being an error), and so does init.
    // @ts-expect-error serverUrl is required
    await init({ clientId: options.clientId });
  } catch (e) {
    if (isChatauthError(e)) result.noServerUrl = e.code;
  }
  try {
    const auth: Auth = await init(options);
    const token: Token = await auth.getToken();
    result.entityId = token.entityId;
    result.identified = token.identified;
    result.expiresInMs = token.expiresAt - Date.now();
  } catch (e) {
    result.error = isChatauthError(e) ? `${e.code}: ${e.message} (${hints[e.code] ?? "see docs/sdk.md"})` : String(e);
  }
  return result;
}
