// import wasmUrl from "@chatauth/sdk/chatauth.wasm" with a bundler that
// turns a file into its URL (esbuild: --loader:.wasm=file); pass the URL
// to init({ wasmUrl }).
declare const wasmUrl: string;
export default wasmUrl;
