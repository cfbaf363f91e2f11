// chatauth chat widget. Embed with one tag:
//   <script src="https://chat.example.com/web/widget.js" data-client-id="…" async></script>
// Optional: data-server="https://chat.example.com" (default: where this file came from),
// data-title="Chat with us", data-identity-endpoint="/chat-identity" (a same-origin URL
// of the site answering the signed-in user's identity token; docs/identity.md).
// window.chatauthWidget.logout() signs the visitor out (call it from the site's sign-out).
// Everything renders inside a shadow root, so the host page's CSS cannot
// break the widget and the widget cannot break the page.
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script) return;
  const clientId = script.dataset.clientId;
  const server = (script.dataset.server || new URL(script.src).origin).replace(/\/+$/, "");
  const title = script.dataset.title || "Chat with us";
  if (!clientId) {
    console.error("chatauth widget: add data-client-id=\"…\" to the script tag (console → OAuth clients)");
    return;
  }
  const convKey = "chatauth:conversation:" + clientId;
  // The identity endpoint answers a token that signs the visitor in as
  // the site's user: another origin's must never speak for this site.
  let identityURL = null;
  if (script.dataset.identityEndpoint) {
    identityURL = new URL(script.dataset.identityEndpoint, document.baseURI);
    if (identityURL.origin !== location.origin) {
      console.error(`chatauth widget: data-identity-endpoint must be on this site's origin (${location.origin}), not ${identityURL.origin}`);
      return;
    }
  }
  // identity() for the SDK: the token as JSON {"identity_token"} or text;
  // 401, 204 or an empty answer: nobody is signed in on the site.
  async function identity() {
    const res = await fetch(identityURL, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json, text/plain" } });
    if (res.status === 401 || res.status === 204) return null;
    if (!res.ok) throw new Error(`${identityURL.pathname} answered ${res.status}`);
    const text = (await res.text()).trim();
    if (!text) return null;
    if (/json/.test(res.headers.get("Content-Type") || "") || text.startsWith("{")) {
      const body = JSON.parse(text);
      return (body && typeof body === "object" ? body.identity_token : body) || null;
    }
    return text;
  }

  const CSS = `
:host { all: initial; }
.w { all: initial; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111827; }
.w *, .w *::before, .w *::after { box-sizing: border-box; }
.bubble { position: fixed; right: 20px; bottom: 20px; width: 60px; height: 60px; border-radius: 50%; border: 0; cursor: pointer;
  background: #2563eb; color: #fff; box-shadow: 0 6px 20px rgba(0,0,0,.25); display: flex; align-items: center; justify-content: center; }
.bubble:focus-visible, button:focus-visible, textarea:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
.bubble svg { width: 28px; height: 28px; fill: currentColor; }
.badge { position: absolute; top: -4px; right: -4px; min-width: 22px; height: 22px; padding: 0 6px; border-radius: 11px;
  background: #dc2626; color: #fff; font: 700 12px/22px system-ui, sans-serif; text-align: center; }
.panel { position: fixed; right: 20px; bottom: 92px; width: 360px; max-width: calc(100vw - 24px); height: 520px; max-height: calc(100vh - 120px);
  background: #fff; border-radius: 14px; box-shadow: 0 12px 40px rgba(0,0,0,.25); display: flex; flex-direction: column; overflow: hidden; }
.panel[hidden], .badge[hidden] { display: none; }
header { background: #2563eb; color: #fff; padding: 12px 14px; display: flex; align-items: center; gap: 8px; }
header h2 { margin: 0; font: 600 16px/1.2 system-ui, sans-serif; flex: 1; }
.status { font-size: 12px; opacity: .9; }
.status::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%; background: #fbbf24; margin-right: 5px; vertical-align: middle; }
.status[data-state="online"]::before { background: #34d399; }
.status[data-state="offline"]::before { background: #f87171; }
.close { background: transparent; border: 0; color: #fff; font-size: 22px; line-height: 1; cursor: pointer; padding: 2px 6px; border-radius: 6px; }
ol { list-style: none; margin: 0; padding: 12px; flex: 1; overflow-y: auto; display: flex; flex-direction: column; gap: 8px; background: #f9fafb; }
li { max-width: 80%; padding: 8px 11px; border-radius: 12px; white-space: pre-wrap; word-wrap: break-word; }
li.incoming { align-self: flex-end; background: #2563eb; color: #fff; border-bottom-right-radius: 4px; }
li.outgoing { align-self: flex-start; background: #fff; border: 1px solid #e5e7eb; border-bottom-left-radius: 4px; }
li.hint { align-self: center; background: transparent; color: #6b7280; font-size: 13px; text-align: center; }
.signin { flex: 1; margin: 0; padding: 24px; display: flex; align-items: center; justify-content: center; text-align: center; color: #374151; background: #f9fafb; }
.signin[hidden], .w [data-signin] ol, .w [data-signin] form { display: none; }
form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #e5e7eb; background: #fff; }
textarea { flex: 1; resize: none; border: 1px solid #d1d5db; border-radius: 10px; padding: 8px 10px; font: inherit; color: inherit; min-height: 40px; max-height: 120px; }
.send { border: 0; border-radius: 10px; background: #2563eb; color: #fff; font: 600 14px system-ui, sans-serif; padding: 0 14px; cursor: pointer; }
.send:disabled { opacity: .5; cursor: default; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
@media (max-width: 420px) { .panel { right: 12px; bottom: 84px; width: calc(100vw - 24px); } .bubble { right: 12px; bottom: 12px; } }
`;

  const host = document.createElement("chatauth-widget");
  // The host element itself is in the page's light DOM: pin what a
  // hostile stylesheet could change, with !important.
  for (const [k, v] of Object.entries({ all: "initial", display: "block", position: "fixed", "z-index": "2147483647", right: "0", bottom: "0", width: "0", height: "0", visibility: "visible", opacity: "1" })) {
    host.style.setProperty(k, v, "important");
  }
  const root = host.attachShadow({ mode: "open" });
  root.innerHTML = `<style>${CSS}</style>
<div class="w">
  <button class="bubble" type="button" aria-label="Open chat" aria-expanded="false" aria-controls="chatauth-panel">
    <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"/></svg>
    <span class="badge" hidden aria-label="unread messages"></span>
  </button>
  <section class="panel" id="chatauth-panel" role="dialog" aria-modal="false" aria-labelledby="chatauth-title" hidden>
    <header>
      <h2 id="chatauth-title"></h2>
      <span class="status" role="status" data-state="connecting">Connecting…</span>
      <button class="close" type="button" aria-label="Close chat">×</button>
    </header>
    <ol class="messages" aria-live="polite" aria-label="Messages"></ol>
    <p class="signin" role="alert" hidden>Please sign in on the site to chat.</p>
    <form class="composer">
      <label class="sr" for="chatauth-input">Message</label>
      <textarea id="chatauth-input" rows="1" placeholder="Write a message…" maxlength="10000"></textarea>
      <button class="send" type="submit" aria-label="Send message">Send</button>
    </form>
  </section>
</div>`;
  const $ = (s) => root.querySelector(s);
  const bubble = $(".bubble"), badge = $(".badge"), panel = $(".panel"), list = $(".messages");
  const input = $("textarea"), form = $("form"), status = $(".status"), sendBtn = $(".send");
  $("#chatauth-title").textContent = title;

  let auth, conversation = localStorage.getItem(convKey), lastId = 0, unread = 0, stream, retry = 1000;
  // owner: the visitor the conversation was loaded for. A token for
  // another one (a sign-in, a logout in another tab) means loading it
  // again: a merged conversation comes along, anyone else's is a 404.
  let owner = null;
  const seen = new Set();

  // The client accepts only visitors the site signed in: say so instead
  // of the chat, and stop (retrying cannot help until the page changes).
  function needSignIn() {
    stream?.close();
    panel.dataset.signin = "";
    $(".signin").hidden = false;
    setStatus("offline", "Sign-in needed");
  }
  // A refused identity is the site's to fix: tell its developer.
  const signInNeeded = (e) => {
    if (e && /identity/.test(e.code || "") && e.code !== "identity_required") console.error("chatauth widget:", e.code, e.message);
    return e && e.code === "identity_required";
  };
  async function entity() { return (await auth.getToken()).entityId; }
  // reset forgets the conversation (after a logout, or when it is not
  // this visitor's).
  function reset() {
    stream?.close();
    localStorage.removeItem(convKey);
    conversation = null; owner = null; lastId = 0;
    seen.clear();
    list.replaceChildren();
    if (!panel.hidden) hint("Ask us anything. We usually answer within minutes.");
  }

  function setStatus(state, text) { status.dataset.state = state; status.textContent = text; }
  function hint(text) {
    if (list.children.length) return;
    const li = document.createElement("li");
    li.className = "hint";
    li.textContent = text;
    list.append(li);
  }
  function render(m) {
    if (seen.has(m.id)) return;
    seen.add(m.id);
    lastId = Math.max(lastId, m.id);
    list.querySelector(".hint")?.remove();
    // The visitor's own words are the messages the customer API wrote for
    // them: incoming and from the customer. Anything else (an agent's or
    // a bot's, whatever its message_type) is shown as the other side's.
    const mine = m.message_type === "incoming" && m.sender_type === "customer";
    const li = document.createElement("li");
    li.className = mine ? "incoming" : "outgoing";
    li.textContent = m.content;
    li.setAttribute("aria-label", (mine ? "You: " : "Agent: ") + m.content);
    list.append(li);
    list.scrollTop = list.scrollHeight;
    if (!mine && panel.hidden) {
      unread++;
      badge.textContent = String(unread);
      badge.hidden = false;
      bubble.setAttribute("aria-label", `Open chat (${unread} unread)`);
    }
  }

  // The SDK (WebAssembly) loads after the page, never blocking it.
  let loading;
  function sdk() {
    if (!loading) {
      loading = import(server + "/web/dist/chatauth.js")
        .then(({ init }) => init({ serverUrl: server, clientId, identity: identityURL ? identity : undefined }))
        .then((a) => (auth = a));
      loading.catch((e) => { loading = undefined; setStatus("offline", "Offline"); console.error("chatauth widget:", e); });
    }
    return loading;
  }
  async function api(path, opts = {}) {
    await sdk();
    const res = await auth.fetch(path, { ...opts, headers: { "Content-Type": "application/json", ...(opts.headers || {}) } });
    const body = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) {
      const err = new Error((body && body.message) || "request failed: " + res.status);
      err.status = res.status;
      err.code = body && body.error;
      throw err;
    }
    return body;
  }

  async function restore() {
    if (!conversation) { setStatus("online", "Online"); return; }
    try {
      const conv = await api(`/customer/api/v1/conversations/${conversation}`);
      owner = await entity();
      conv.messages.forEach(render);
      connect();
    } catch (e) {
      if (signInNeeded(e)) needSignIn();
      else if (e.status === 404) { reset(); setStatus("online", "Online"); }
      else setStatus("offline", "Offline");
    }
  }

  // Agent replies arrive as server-sent events, which the SDK reads with
  // fetch: an EventSource could send neither the DPoP proof nor the token
  // outside the URL. The SDK reconnects after the last message seen, with
  // a fresh token when the server ended the stream for its token, so
  // nothing is missed.
  async function connect() {
    if (!conversation) return;
    stream?.close();
    try {
      const t = await (await sdk(), auth.getToken());
      if (owner && t.entityId !== owner) { owner = null; restore(); return; }
    } catch (e) {
      if (signInNeeded(e)) { needSignIn(); return; }
      setStatus("offline", "Offline");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
      return;
    }
    stream?.close(); // another connect() may have opened one meanwhile
    stream = auth.events(`/customer/api/v1/conversations/${conversation}/events`, {
      lastEventId: String(lastId),
      onOpen: () => { setStatus("online", "Online"); retry = 1000; },
      onMessage: (ev) => { if (ev.event === "message") { try { render(JSON.parse(ev.data)); } catch {} } },
      onError: (e) => {
        if (e.retrying) setStatus("connecting", "Reconnecting…");
        else if (signInNeeded(e)) needSignIn();
        // Not this visitor's conversation (a logout or sign-in in another
        // tab made another visitor): load it again, or start afresh.
        else if (e.status === 404) { owner = null; restore(); }
        else { setStatus("offline", "Offline"); console.error("chatauth widget:", e.code, e.message); }
      },
    });
  }

  async function send(text) {
    sendBtn.disabled = true;
    try {
      if (!conversation) {
        const conv = await api("/customer/api/v1/conversations", { method: "POST", body: "{}" });
        conversation = String(conv.id);
        owner = await entity();
        localStorage.setItem(convKey, conversation);
        connect();
      }
      render(await api(`/customer/api/v1/conversations/${conversation}/messages`, { method: "POST", body: JSON.stringify({ content: text }) }));
      input.value = "";
    } catch (e) {
      if (signInNeeded(e)) needSignIn();
      else setStatus("offline", "Not sent — try again");
    } finally {
      sendBtn.disabled = false;
      input.focus();
    }
  }

  function open() {
    panel.hidden = false;
    bubble.setAttribute("aria-expanded", "true");
    bubble.setAttribute("aria-label", "Close chat");
    unread = 0;
    badge.hidden = true;
    hint("Ask us anything. We usually answer within minutes.");
    input.focus();
    // With an identity endpoint, find out at once whether the visitor may
    // chat; an anonymous widget gets its token at the first message, so a
    // glance at the panel creates no visitor.
    sdk().then(() => identityURL && auth.getToken()).catch((e) => { if (signInNeeded(e)) needSignIn(); });
  }
  function close() {
    panel.hidden = true;
    bubble.setAttribute("aria-expanded", "false");
    bubble.setAttribute("aria-label", "Open chat");
    bubble.focus();
  }
  bubble.addEventListener("click", () => (panel.hidden ? open() : close()));
  $(".close").addEventListener("click", close);
  root.addEventListener("keydown", (e) => { if (e.key === "Escape" && !panel.hidden) { e.preventDefault(); close(); } });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (text) send(text);
  });

  function mount() {
    document.body.append(host);
    // Start after the page has finished loading: the widget never competes
    // with the host page's own resources.
    const start = () => restore();
    if ("requestIdleCallback" in window) requestIdleCallback(start, { timeout: 2000 }); else setTimeout(start, 200);
  }
  if (document.readyState === "complete") mount(); else window.addEventListener("load", mount, { once: true });
  // logout ends the visitor's chat session (every tab of the site) and
  // forgets the conversation here; the site calls it from its sign-out.
  async function logout() {
    await sdk();
    try { await auth.logout(); } finally { reset(); }
  }
  window.chatauthWidget = { open, close, logout, element: host };
})();
