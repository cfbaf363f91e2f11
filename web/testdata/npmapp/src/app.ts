// esbuild's way: the file loader copies chatauth.wasm under a hashed name
// and gives its URL, which init() takes as wasmUrl.
//   esbuild src/app.ts --bundle --format=esm --loader:.wasm=file --outdir=dist
import wasmUrl from "@chatauth/sdk/chatauth.wasm";
import { run } from "./run.js";

window.result = await run({ wasmUrl });
