// The chat widget in Firefox ESR under strict tracking protection
// (TestFirefoxWidget judges the report). The widget is on the site
// (127.0.0.1), chatauth on another site (localhost). Input:
//   page        the site's page with the widget's script tag
//   clientId    the widget's client (its conversation's localStorage key)
//   api         chatauth as Node reaches it, for the agent
//   agent       the agent's Authorization header value ("Bearer …")
//   question, answer  what the visitor writes and what the agent answers
//   screenshot  a PNG path for the widget with the answer, or ""
// Parts: "conversation" (the visitor writes, the agent answers through
// the agent API, the widget shows it without a reload), "reload" (the
// conversation comes back).
import { main, until, watch } from "./lib.mjs";

// In the page: `root` is the widget's shadow root.
const inWidget = (body) => new Function("arg", `const root = window.chatauthWidget && window.chatauthWidget.element.shadowRoot; if (!root) return false; return (${body});`);
const state = inWidget(`({ status: root.querySelector(".status").textContent, items: [...root.querySelectorAll("li")].map(li => li.className + ": " + li.textContent),
  composer: root.querySelector("textarea").value, sendDisabled: root.querySelector(".send").disabled })`);
const texts = inWidget(`[...root.querySelectorAll("li.incoming, li.outgoing")].map(li => li.className + ": " + li.textContent)`);

await main(async ({ browser, input, part }) => {
  const [page] = await browser.pages();
  const log = watch(page);
  const requests = [];
  page.on("response", (res) => { if (requests.length < 40) requests.push(`${res.request().method()} ${new URL(res.url()).pathname} ${res.status()}`); });
  page.on("requestfailed", (req) => { if (requests.length < 40) requests.push(`${req.method()} ${new URL(req.url()).pathname} failed: ${req.failure()?.errorText}`); });
  let conversation;

  await part("conversation", async () => {
    await page.goto(input.page);
    await until(page, "the widget", () => !!window.chatauthWidget && !!document.querySelector("chatauth-widget"));
    await page.evaluate(inWidget(`root.querySelector(".bubble").click(), true`));
    await until(page, "the open panel with focus in the composer", inWidget(`!root.querySelector(".panel").hidden && root.activeElement === root.querySelector("textarea")`));
    // Real keys, through WebDriver BiDi's input actions, into the
    // focused composer; Enter sends.
    await page.keyboard.type(input.question);
    await page.keyboard.press("Enter");
    try {
      await until(page, "the visitor's message", inWidget(`[...root.querySelectorAll("li.incoming")].some(li => li.textContent === arg)`), 20_000, input.question);
    } catch (e) {
      throw new Error(`${e.message}; the widget: ${JSON.stringify(await page.evaluate(state))}; requests: ${JSON.stringify(requests)}`);
    }
    conversation = await until(page, "the conversation id", (k) => localStorage.getItem(k), 10_000, "chatauth:conversation:" + input.clientId);

    // The agent answers through the agent API, as a bot or the console would.
    const sent = Date.now();
    const res = await fetch(`${input.api}/api/v1/conversations/${conversation}/messages`, {
      method: "POST",
      headers: { Authorization: input.agent, "Content-Type": "application/json" },
      body: JSON.stringify({ content: input.answer, message_type: "outgoing" }),
    });
    const agentStatus = res.status;
    if (agentStatus !== 201) throw new Error(`the agent's reply: ${agentStatus} ${await res.text()}`);
    await until(page, "the agent's reply in the widget", inWidget(`[...root.querySelectorAll("li.outgoing")].some(li => li.textContent === arg)`), 20_000, input.answer);
    const replyMs = Date.now() - sent;
    if (input.screenshot) await page.screenshot({ path: input.screenshot });
    return {
      conversation, agentStatus, replyMs, messages: await page.evaluate(texts),
      status: await page.evaluate(inWidget(`root.querySelector(".status").textContent`)),
      console: log.slice(),
    };
  });

  await part("reload", async () => {
    if (!conversation) throw new Error("no conversation");
    await page.reload();
    await until(page, "the widget after the reload", () => !!window.chatauthWidget);
    await until(page, "the conversation after the reload", inWidget(`root.querySelectorAll("li.incoming, li.outgoing").length >= 2`));
    return {
      conversation: await page.evaluate((k) => localStorage.getItem(k), "chatauth:conversation:" + input.clientId),
      messages: await page.evaluate(texts),
      console: log.slice(),
    };
  });
});
