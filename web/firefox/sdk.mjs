// The SDK in Firefox ESR under strict tracking protection, one Firefox for
// all of it (web/firefox_browser_test.go, TestFirefoxSDK, judges the
// report). Input:
//   page          the site's page (sdk_browser_test.go's hostPage) for client A
//   tabsPage      the same page for client B (three tabs sharing a refresh)
//   fallbackPage  the same page for client C (three tabs without Web Locks
//                 or BroadcastChannel)
//   server        chatauth's origin as the browser reaches it (another site)
// Parts, in order: "two sites", "reload", "dpop", then at once "silent
// refresh", "tabs" and "tabs without locks".
import { main, sleep, until, watch } from "./lib.mjs";

const ready = () => window.ready === true || window.initError !== undefined;

// open navigates page to url, waits for the SDK's first token, and says
// how it went.
async function open(page, url) {
  watch(page);
  await page.goto(url);
  await until(page, "the SDK's first token", ready, 30_000);
  const initError = await page.evaluate(() => window.initError || "");
  if (initError) throw new Error(`init failed in Firefox: ${initError}\nconsole: ${page.chatauthLog.join("\n")}`);
}

// token is the page's current token, as getToken() answers it.
const token = (page) =>
  page.evaluate(async () => {
    const t = await auth.getToken();
    return { accessToken: t.accessToken, tokenType: t.tokenType, entityId: t.entityId, identified: t.identified, expiresInMs: t.expiresAt - Date.now() };
  });

// me is auth.fetch("/customer/api/v1/me") in the page.
const me = (page) =>
  page.evaluate(async () => {
    const r = await auth.fetch("/customer/api/v1/me");
    return { status: r.status, body: await r.json().catch(() => null) };
  });

// record keeps the requests Firefox sent to chatauth's customer paths:
// the Authorization scheme, whether a DPoP proof went along, and for
// POST /customer/token the answer's token_type.
function record(page) {
  const seen = { requests: [], answers: [] };
  page.on("request", (req) => {
    const u = new URL(req.url());
    if (!u.pathname.startsWith("/customer/") || req.method() === "OPTIONS") return;
    const h = Object.fromEntries(Object.entries(req.headers()).map(([k, v]) => [k.toLowerCase(), v]));
    seen.requests.push({ method: req.method(), path: u.pathname, authScheme: (h.authorization || "").split(" ")[0], dpopProof: "dpop" in h });
  });
  page.on("response", async (res) => {
    if (res.request().method() !== "POST" || new URL(res.url()).pathname !== "/customer/token") return;
    const entry = { status: res.status() };
    try {
      // Reading a body over BiDi needs Firefox's network data collector;
      // without one, the SDK's tokenType stands in (the "dpop" part).
      const body = await Promise.race([res.json(), sleep(3000).then(() => { throw new Error("no body in 3 s"); })]);
      entry.tokenType = body.token_type;
      if (body.error) entry.error = body.error;
    } catch (e) {
      entry.bodyError = String(e.message || e);
    }
    seen.answers.push(entry);
  });
  return seen;
}

await main(async ({ browser, input, part }) => {
  const [page] = await browser.pages();
  const net = record(page);
  let first;

  // 1. The site (127.0.0.1) and chatauth (localhost) are two sites: the
  // visitor cookie is a third-party cookie, partitioned by Firefox. A
  // frame of chatauth inside the site writes localStorage and a cookie;
  // chatauth as a top-level page sees neither when state is partitioned.
  await part("two sites", async () => {
    await open(page, input.page);
    first = await token(page);
    const api = await me(page);
    const apis = await page.evaluate(() => ({ locks: typeof navigator.locks?.request, broadcastChannel: typeof BroadcastChannel, secure: isSecureContext, indexedDB: typeof indexedDB }));
    const probe = `probe-${Date.now()}`;
    await page.evaluate((src) => new Promise((resolve, reject) => {
      const f = document.createElement("iframe");
      f.src = src;
      f.onload = resolve;
      f.onerror = reject;
      document.body.append(f);
    }), input.server + "/healthz");
    const frame = page.frames().find((f) => f.url().startsWith(input.server));
    if (!frame) throw new Error("the chatauth frame did not load: " + page.frames().map((f) => f.url()).join(", "));
    const thirdParty = await frame.evaluate((v) => {
      localStorage.setItem("chatauth-probe", v);
      document.cookie = `chatauth_probe=${v}; path=/`;
      return { storage: localStorage.getItem("chatauth-probe"), cookie: document.cookie.includes(v) };
    }, probe);
    const top = await browser.newPage();
    await top.goto(input.server + "/healthz");
    const firstParty = await top.evaluate((v) => ({ storage: localStorage.getItem("chatauth-probe") === v, cookie: document.cookie.includes(v) }), probe);
    await top.close();
    return { token: first, me: api, apis, siteCookie: await page.evaluate(() => document.cookie), thirdParty, firstParty, requests: [...net.requests], answers: [...net.answers] };
  });

  // 4. A reload keeps the visitor: the refresh token in the site's
  // IndexedDB, not the (never sent) cookie, carries it over.
  let again;
  await part("reload", async () => {
    if (!first) throw new Error("no first token");
    await page.reload();
    await until(page, "the SDK's token after the reload", ready, 30_000);
    const initError = await page.evaluate(() => window.initError || "");
    if (initError) throw new Error(`init after reload: ${initError}\nconsole: ${page.chatauthLog.join("\n")}`);
    again = await token(page);
    return { before: first, after: again, me: await me(page) };
  });

  // 7. DPoP-bound tokens (docs/dpop.md): when the SDK sends proofs, the
  // answer's token_type is DPoP and the customer API works with them. The
  // Go test skips this part while the SDK sends none.
  await part("dpop", async () => {
    if (!again) throw new Error("no token after the reload");
    const out = { tokenType: again.tokenType, firstTokenType: first.tokenType, accessToken: again.accessToken, answers: [...net.answers] };
    if (again.tokenType === "DPoP") {
      const from = net.requests.length;
      out.me = await me(page);
      out.meRequests = net.requests.slice(from).filter((r) => r.path === "/customer/api/v1/me");
    }
    out.tokenRequests = net.requests.filter((r) => r.path === "/customer/token");
    return out;
  });
  await page.close();

  // Pages for the parts that run at once, made one after another: a new
  // tab joins the newest window. Each window shows one tab; the others
  // are background tabs, whose timers Firefox slows to once a second.
  const refreshPage = await browser.newPage({ type: "window" });
  const tabs = [await browser.newPage({ type: "window" }), await browser.newPage({ background: true }), await browser.newPage({ background: true })];
  const bare = [await browser.newPage({ type: "window" }), await browser.newPage({ background: true }), await browser.newPage({ background: true })];
  for (const p of bare) {
    await p.evaluateOnNewDocument(() => {
      delete Navigator.prototype.locks;
      delete globalThis.BroadcastChannel;
    });
  }

  // 2. Three 6 s lifetimes of auth.fetch every 250 ms: no 401, at least
  // two refreshes after the first token, one visitor.
  const silent = part("silent refresh", async () => {
    await open(refreshPage, input.page);
    await refreshPage.evaluate(() => hammer(18000));
    await sleep(18500);
    return { stats: await refreshPage.evaluate(() => window.stats), visibility: await refreshPage.evaluate(() => document.visibilityState) };
  });

  // 3. Three tabs of one site refresh about as often as one: Web Locks
  // elect the tab that refreshes, BroadcastChannel hands the token on.
  const shared = part("tabs", async () => {
    for (const t of tabs) await open(t, input.tabsPage);
    const counts = () => Promise.all(tabs.map((t) => t.evaluate(() => auth.refreshCount())));
    const before = await counts();
    await sleep(12000);
    const after = await counts();
    const tokens = await Promise.all(tabs.map((t) => token(t)));
    return {
      before, after, refreshes: after.reduce((a, b) => a + b, 0) - before.reduce((a, b) => a + b, 0),
      apis: await tabs[0].evaluate(() => ({ locks: typeof navigator.locks?.request, broadcastChannel: typeof BroadcastChannel })),
      visibility: await Promise.all(tabs.map((t) => t.evaluate(() => document.visibilityState))),
      hasToken: await Promise.all(tabs.map((t) => t.evaluate(() => auth.hasToken()))),
      entities: tokens.map((t) => t.entityId),
      distinctTokens: new Set(tokens.map((t) => t.accessToken)).size,
    };
  });

  // 3b. The fallback: without either API each tab refreshes on its own
  // (docs/sdk.md, "Browser support") and none of them sees a 401.
  const alone = part("tabs without locks", async () => {
    for (const t of bare) await open(t, input.fallbackPage);
    const apis = await bare[0].evaluate(() => ({ locks: typeof navigator.locks, broadcastChannel: typeof globalThis.BroadcastChannel }));
    const before = await Promise.all(bare.map((t) => t.evaluate(() => auth.refreshCount())));
    await Promise.all(bare.map((t) => t.evaluate(() => hammer(12000))));
    await sleep(12500);
    const after = await Promise.all(bare.map((t) => t.evaluate(() => auth.refreshCount())));
    return {
      apis, before, after,
      stats: await Promise.all(bare.map((t) => t.evaluate(() => window.stats))),
      hasToken: await Promise.all(bare.map((t) => t.evaluate(() => auth.hasToken()))),
      entities: (await Promise.all(bare.map((t) => token(t)))).map((t) => t.entityId),
    };
  });
  await Promise.all([silent, shared, alone]);
});
