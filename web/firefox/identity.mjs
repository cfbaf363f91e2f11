// An identified visitor in Firefox ESR under strict tracking protection
// (TestFirefoxIdentifiedVisitor judges the report). The site
// (identity_browser_test.go's identitySite, on 127.0.0.1) signs its user
// in with a cookie of its own and answers identity tokens; chatauth is
// another site. Input:
//   login   the site's sign-in URL for the user, which then shows the SDK page
//   text    what the visitor writes in the conversation
// Parts: "signed in" (the SDK's token is the site user's; a conversation
// started), "second profile" (another cookie jar and storage, signed in
// as the same user: the same visitor, who sees that conversation).
import { main, until, watch } from "./lib.mjs";

const ready = () => window.ready === true || window.initError !== undefined;

async function signIn(page, url) {
  watch(page);
  await page.goto(url);
  await until(page, "the SDK's token", ready, 30_000);
  const initError = await page.evaluate(() => window.initError || "");
  if (initError) throw new Error(`init failed in Firefox: ${initError}\nconsole: ${page.chatauthLog.join("\n")}`);
  return page.evaluate(() => ({ entityId: window.token.entityId, identified: window.token.identified, tokenType: window.token.tokenType, accessToken: window.token.accessToken }));
}

await main(async ({ browser, input, part }) => {
  const [page] = await browser.pages();
  let conversation;

  await part("signed in", async () => {
    const token = await signIn(page, input.login);
    const conv = await page.evaluate(() => call("POST", "/customer/api/v1/conversations", {}));
    if (conv.status !== 201) throw new Error(`start a conversation: ${JSON.stringify(conv)}`);
    conversation = conv.body.id;
    const msg = await page.evaluate((id, text) => call("POST", `/customer/api/v1/conversations/${id}/messages`, { content: text }), conversation, input.text);
    return { token, conversation, messageStatus: msg.status, me: await page.evaluate(() => call("GET", "/customer/api/v1/me")) };
  });

  // A user context of WebDriver BiDi is a profile of its own: cookies,
  // IndexedDB, the lot.
  await part("second profile", async () => {
    if (!conversation) throw new Error("no conversation");
    const other = await (await browser.createBrowserContext()).newPage();
    const token = await signIn(other, input.login);
    const seen = await other.evaluate((id) => call("GET", `/customer/api/v1/conversations/${id}`), conversation);
    return { token, status: seen.status, messages: (seen.body && seen.body.messages || []).map((m) => m.content) };
  });
});
