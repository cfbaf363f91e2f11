// No wasmUrl: the SDK fetches chatauth.wasm beside the bundle, where
// esbuild does not put it; the build copies it there.
//   esbuild src/plain.ts --bundle --format=esm --outdir=dist
//   cp node_modules/@chatauth/sdk/chatauth.wasm dist/
import { run } from "./run.js";

window.result = await run();
