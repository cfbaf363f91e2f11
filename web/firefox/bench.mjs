// Page load to first token in Firefox ESR, for ./build.sh bench
// (web/firefox_browser_test.go, TestFirefoxFirstTokenTiming, runs this
// once per fresh Firefox and takes the median). Input:
//   page  the site's page (sdk_browser_test.go's hostPage), whose module
//         sets window.firstTokenMs: init (wasm fetch and compile, the DPoP
//         key, POST /customer/token with its nonce retry) to getToken()
// Part "first token": {firstTokenMs, tokenType}, the same figure the
// Chromium timing (TestSDKFirstTokenTiming) reads.
import { main, until, watch } from "./lib.mjs";

await main(async ({ browser, input, part }) => {
  const [page] = await browser.pages();
  watch(page);
  await part("first token", async () => {
    await page.goto(input.page);
    await until(page, "the SDK's first token", () => window.ready === true || window.initError !== undefined, 30_000);
    const initError = await page.evaluate(() => window.initError || "");
    if (initError) throw new Error(`init failed in Firefox: ${initError}`);
    return page.evaluate(async () => ({ firstTokenMs: window.firstTokenMs, tokenType: (await auth.getToken()).tokenType }));
  });
});
