// chatauth console: a small static app over the same JSON API everyone
// else uses. The access token lives in memory; the refresh token in
// sessionStorage (this tab only), so a reload keeps you signed in.
"use strict";
const $ = (s) => document.querySelector(s);
let session = null; // {token, refreshToken, user, expiresAt}
let current = null, stream = null, pollTimer = null;

function flash(text, bad) {
  const f = $("#flash");
  f.textContent = text; f.className = bad ? "bad" : ""; f.hidden = false;
  clearTimeout(flash.t); flash.t = setTimeout(() => (f.hidden = true), 6000);
}

async function api(path, opts = {}) {
  if (session && Date.now() > session.expiresAt - 60000) await refresh();
  const headers = { "Content-Type": "application/json", ...(opts.headers || {}) };
  if (session) headers.Authorization = "Bearer " + session.token;
  const res = await fetch(path, { ...opts, headers });
  const body = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.status === 401 && session && !opts.retried) {
    if (await refresh()) return api(path, { ...opts, retried: true });
    signOut();
  }
  if (!res.ok) throw new Error((body && body.message) || res.statusText);
  return body;
}

function adopt(pair) {
  session = { token: pair.token, refreshToken: pair.refreshToken, user: pair.user, expiresAt: Date.now() + pair.expiresIn * 1000 };
  sessionStorage.setItem("chatauth.console", JSON.stringify({ refreshToken: pair.refreshToken, email: pair.user.email }));
}

async function refresh() {
  const saved = JSON.parse(sessionStorage.getItem("chatauth.console") || "null");
  if (!saved) return false;
  const res = await fetch("/api/v1/auth/token", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refreshToken: saved.refreshToken, clientId: saved.email }) });
  if (!res.ok) { sessionStorage.removeItem("chatauth.console"); return false; }
  adopt(await res.json());
  return true;
}

// signOut forgets the session here; the "Sign out" button also ends it on
// the server (POST /api/v1/auth/logout), so a copied token or refresh
// token stops working too.
function signOut() {
  session = null;
  sessionStorage.removeItem("chatauth.console");
  stream?.abort(); clearInterval(pollTimer);
  $("#app").hidden = true; $("#signin").hidden = false;
}

async function signIn(e) {
  e.preventDefault();
  const err = $("#signin-error");
  err.hidden = true;
  const res = await fetch("/api/v1/auth/token", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ email: $("#email").value, password: $("#password").value }) });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) { err.textContent = body.message || "Sign-in failed"; err.hidden = false; return; }
  adopt(body);
  start();
}

function show(view) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== view;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
  if (view === "profile") loadProfile();
  if (view === "clients") loadClients();
  if (view === "tokens") loadTokens();
  if (view === "audit") loadAudit();
}

function start() {
  $("#signin").hidden = true; $("#app").hidden = false;
  $("#who").textContent = `${session.user.email} (${session.user.role})`;
  show((location.hash || "#inbox").slice(1));
  loadConversations();
  clearInterval(pollTimer);
  pollTimer = setInterval(loadConversations, 3000); // the list updates live; the open thread streams
}

// Inbox
async function loadConversations() {
  if (!session) return;
  try {
    const page = await api("/api/v1/conversations?limit=100");
    const ul = $("#conv-list");
    const items = page.data.slice().reverse();
    ul.replaceChildren(...items.map((c) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      const who = c.customer && c.customer.identified ? c.customer.name || c.customer.external_id : c.customer_id ? "Visitor " + c.customer_id.slice(0, 6) : "Conversation";
      b.textContent = `#${c.id} ${c.subject || who} · ${c.status}`;
      b.setAttribute("aria-current", String(current === c.id));
      b.addEventListener("click", () => openConversation(c.id));
      li.append(b);
      return li;
    }));
    if (!items.length) ul.innerHTML = '<li class="muted">No conversations yet.</li>';
  } catch (e) { flash(e.message, true); }
}

// renderCustomer shows who the visitor is. Only the site's identity token
// makes a visitor identified; the email's mark says whether the site
// verified it, so an agent knows how far to trust it.
function renderCustomer(cust) {
  const el = $("#thread-customer");
  el.replaceChildren();
  el.hidden = !cust;
  if (!cust) return;
  const span = (cls, text) => { const s = document.createElement("span"); s.className = cls; s.textContent = text; el.append(s); return s; };
  if (!cust.identified) { span("cust-anonymous muted", "Anonymous visitor"); return; }
  span("cust-id", "Site user " + cust.external_id);
  if (cust.name) span("cust-name", cust.name);
  if (cust.email) {
    span("cust-email", cust.email);
    const v = cust.email_verified ? "verified" : "unverified";
    span("pill cust-verified " + v, v).title = cust.email_verified ? "the site verified this email" : "the site has not verified this email";
  }
}

function renderMessage(m) {
  if (document.getElementById("m" + m.id)) return;
  const li = document.createElement("li");
  li.id = "m" + m.id;
  li.className = m.message_type + (m.private ? " private" : "");
  li.textContent = m.content;
  $("#messages").append(li);
  $("#messages").scrollTop = $("#messages").scrollHeight;
}

async function openConversation(id) {
  current = id;
  const c = await api(`/api/v1/conversations/${id}`);
  $("#thread-empty").hidden = true; $("#thread").hidden = false;
  $("#thread-title").textContent = `Conversation #${c.id}`;
  $("#thread-status").textContent = c.status + (c.assignee_id ? " · assigned" : "");
  renderCustomer(c.customer);
  $("#messages").replaceChildren();
  c.messages.forEach(renderMessage);
  const last = c.messages.length ? c.messages[c.messages.length - 1].id : 0;
  follow(id, last);
  loadConversations();
  $("#reply").focus();
}

// follow reads the agent event stream with fetch, so the bearer travels in
// the Authorization header, never in a URL.
async function follow(id, lastId) {
  stream?.abort();
  const ctl = new AbortController();
  stream = ctl;
  try {
    if (session && Date.now() > session.expiresAt - 60000) await refresh();
    if (!session) return;
    const res = await fetch(`/api/v1/conversations/${id}/events?last_event_id=${lastId}`, { headers: { Authorization: "Bearer " + session.token }, signal: ctl.signal });
    // A refused token (expired, or its sign-in revoked): refresh once,
    // then follow again; a revoked sign-in ends in the sign-in form.
    if (res.status === 401) { if (!(await refresh())) { signOut(); return; } throw new Error("stream: token refreshed"); }
    if (!res.ok) throw new Error("stream: " + res.status);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i); buf = buf.slice(i + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        // "event: end": the server ended the stream because its token
        // expired or was revoked, or it is restarting; the loop below
        // follows again, with a fresh token when needed.
        if (block.split("\n").includes("event: end")) { if (JSON.parse(data).reason !== "shutdown") await refresh(); continue; }
        if (data) { const m = JSON.parse(data); lastId = m.id; renderMessage(m); }
      }
    }
  } catch (e) {
    if (ctl.signal.aborted) return;
  }
  if (!ctl.signal.aborted && current === id) setTimeout(() => follow(id, lastId), 2000);
}

async function reply(e) {
  e.preventDefault();
  const text = $("#reply").value.trim();
  if (!text || !current) return;
  try {
    renderMessage(await api(`/api/v1/conversations/${current}/messages`, { method: "POST", body: JSON.stringify({ content: text, message_type: "outgoing" }) }));
    $("#reply").value = "";
  } catch (err) { flash(err.message, true); }
}

async function updateConversation(patch, done) {
  try {
    await api(`/api/v1/conversations/${current}`, { method: "PATCH", body: JSON.stringify(patch) });
    flash(done);
    openConversation(current);
  } catch (e) { flash(e.message, true); } // e.g. the matrix lets only admins update conversations
}

// Profile
async function loadProfile() {
  const p = await api("/api/v1/profile");
  $("#profile-data").innerHTML = "";
  for (const [k, v] of Object.entries({ Name: p.name, Email: p.email, Role: p.role, Account: p.account_id, "User id": p.id })) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    $("#profile-data").append(dt, dd);
  }
}

async function resetToken() {
  if (!confirm("Reset your API token? Integrations using the current one stop working at once.")) return;
  const r = await api("/api/v1/profile/reset_access_token", { method: "POST" });
  $("#api-token").textContent = r.access_token;
  $("#token-box").hidden = false;
  flash("New API token created. Copy it now: it is not shown again.");
}

async function copy(sel) {
  try { await navigator.clipboard.writeText($(sel).textContent); flash("Copied."); } catch { flash("Select the text and copy it by hand.", true); }
}

// OAuth clients
const lines = (s) => s.split("\n").map((l) => l.trim()).filter(Boolean);
async function loadClients() {
  try {
    const page = await api("/api/v1/oauth/clients");
    $("#client-rows").replaceChildren(...page.data.map((c) => {
      const tr = document.createElement("tr");
      for (const v of [c.name, c.client_id, c.client_type, c.redirect_uris.join("\n"), c.allowed_origins.join("\n"), c.dpop]) {
        const td = document.createElement("td"); td.textContent = v; td.style.whiteSpace = "pre-line"; tr.append(td);
      }
      const td = document.createElement("td");
      const edit = document.createElement("button"); edit.type = "button"; edit.className = "secondary"; edit.textContent = "Edit";
      edit.addEventListener("click", () => editClient(c));
      td.append(edit); tr.append(td);
      return tr;
    }));
  } catch (e) { flash(e.message, true); }
}

// The form's field for each name the server's errors start with
// ("post_logout_redirect_uris[0]: must not contain a fragment (#)").
const clientFields = { name: "#client-name", client_type: "#client-type", redirect_uris: "#client-redirects", allowed_origins: "#client-origins",
  post_logout_redirect_uris: "#client-post-logout", backchannel_logout_uri: "#client-backchannel", id_token_signed_response_alg: "#client-id-alg", dpop: "#client-dpop" };

// clientError shows a refusal under the form and marks the field it
// names, or clears both (msg empty): the flash alone fades too soon to
// read which line of which field was wrong.
function clientError(msg) {
  $("#client-error").textContent = msg || "";
  $("#client-error").hidden = !msg;
  for (const sel of Object.values(clientFields)) $(sel).removeAttribute("aria-invalid");
  const field = msg && clientFields[msg.split(/[[:]/, 1)[0]];
  if (field) { $(field).setAttribute("aria-invalid", "true"); $(field).focus(); }
}

function editClient(c) {
  clientError("");
  $("#client-form-title").textContent = c ? `Edit ${c.name}` : "New client";
  $("#client-id").value = c ? c.client_id : "";
  $("#client-name").value = c ? c.name : "";
  $("#client-type").value = c ? c.client_type : "public";
  $("#client-redirects").value = c ? c.redirect_uris.join("\n") : "";
  $("#client-origins").value = c ? c.allowed_origins.join("\n") : "";
  $("#client-post-logout").value = c ? (c.post_logout_redirect_uris || []).join("\n") : "";
  $("#client-backchannel").value = c ? c.backchannel_logout_uri || "" : "";
  $("#client-id-alg").value = c && c.id_token_signed_response_alg ? c.id_token_signed_response_alg : "RS256";
  $("#client-dpop").value = c ? c.dpop || "optional" : "";
}

async function saveClient(e) {
  e.preventDefault();
  const id = $("#client-id").value;
  const body = { name: $("#client-name").value, client_type: $("#client-type").value, redirect_uris: lines($("#client-redirects").value), allowed_origins: lines($("#client-origins").value),
    post_logout_redirect_uris: lines($("#client-post-logout").value), backchannel_logout_uri: $("#client-backchannel").value.trim(),
    id_token_signed_response_alg: $("#client-id-alg").value };
  // Left out, the server picks the policy of a new client (docs/dpop.md).
  if ($("#client-dpop").value) body.dpop = $("#client-dpop").value;
  try {
    const c = await api(id ? `/api/v1/oauth/clients/${id}` : "/api/v1/oauth/clients", { method: id ? "PUT" : "POST", body: JSON.stringify(body) });
    if (c.client_secret) { $("#client-secret").textContent = c.client_secret; $("#secret-box").hidden = false; }
    flash(id ? "Client saved." : `Client created: ${c.client_id}`);
    editClient(null);
    loadClients();
  } catch (err) { clientError(err.message); flash(err.message, true); }
}

// Tokens & bots
function cells(tr, values) {
  for (const v of values) { const td = document.createElement("td"); td.textContent = v ?? "—"; tr.append(td); }
}
function actionCell(tr, label, fn) {
  const td = document.createElement("td");
  const b = document.createElement("button"); b.type = "button"; b.className = "secondary"; b.textContent = label;
  b.addEventListener("click", fn);
  td.append(b); tr.append(td);
}
async function loadTokens() {
  try {
    const pats = await api("/api/v1/personal_access_tokens");
    $("#pat-rows").replaceChildren(...pats.data.map((t) => {
      const tr = document.createElement("tr");
      cells(tr, [t.name, t.scopes.join(" "), t.expires_at, t.last_used_at]);
      actionCell(tr, "Revoke", async () => {
        if (!confirm(`Revoke "${t.name}"? It stops working at once.`)) return;
        await api(`/api/v1/personal_access_tokens/${t.id}`, { method: "DELETE" }); flash("Token revoked."); loadTokens();
      });
      return tr;
    }));
  } catch (e) { flash(e.message, true); }
  try {
    const bots = await api("/api/v1/agent_bots");
    $("#bot-rows").replaceChildren(...bots.data.map((b) => {
      const tr = document.createElement("tr");
      cells(tr, [b.name, String(b.id), b.last_used_at]);
      actionCell(tr, "Reset token", async () => {
        if (!confirm(`Reset the token of "${b.name}"? The old one stops working at once.`)) return;
        const r = await api(`/api/v1/agent_bots/${b.id}/reset_access_token`, { method: "POST" });
        $("#bot-secret").textContent = r.access_token; $("#bot-box").hidden = false;
      });
      actionCell(tr, "Delete", async () => {
        if (!confirm(`Delete "${b.name}"?`)) return;
        await api(`/api/v1/agent_bots/${b.id}`, { method: "DELETE" }); loadTokens();
      });
      return tr;
    }));
  } catch (e) { $("#bot-rows").innerHTML = `<tr><td colspan="4" class="muted"></td></tr>`; $("#bot-rows td").textContent = e.message; }
}
async function createPAT(e) {
  e.preventDefault();
  const body = { name: $("#pat-name").value, scopes: $("#pat-scopes").value.split(/\s+/).filter(Boolean) };
  if ($("#pat-expires").value) body.expires_in = Number($("#pat-expires").value) * 86400;
  try {
    const t = await api("/api/v1/personal_access_tokens", { method: "POST", body: JSON.stringify(body) });
    $("#pat-secret").textContent = t.token; $("#pat-box").hidden = false;
    flash("Token created. Copy it now: it is not shown again.");
    loadTokens();
  } catch (err) { flash(err.message, true); }
}
async function createBot(e) {
  e.preventDefault();
  try {
    const b = await api("/api/v1/agent_bots", { method: "POST", body: JSON.stringify({ name: $("#bot-name").value }) });
    $("#bot-secret").textContent = b.access_token; $("#bot-box").hidden = false;
    loadTokens();
  } catch (err) { flash(err.message, true); }
}

// Token debugger: decode locally, ask only this server.
function decodeLocally(tok) {
  const parts = tok.trim().replace(/^Bearer\s+/i, "").split(".");
  if (parts.length !== 3) return "not a JWT (opaque tokens have no readable content; the prefix tells the kind)";
  const dec = (p) => JSON.parse(decodeURIComponent(escape(atob(p.replace(/-/g, "+").replace(/_/g, "/")))));
  try {
    const out = { header: dec(parts[0]), payload: dec(parts[1]) };
    for (const k of ["exp", "iat"]) if (out.payload[k]) out.payload[k + "_readable"] = new Date(out.payload[k] * 1000).toISOString();
    return JSON.stringify(out, null, 2);
  } catch { return "the JWT's parts are not valid base64url JSON"; }
}
async function inspectToken() {
  const tok = $("#debug-token").value.trim();
  if (!tok) return;
  $("#debug-decoded").textContent = decodeLocally(tok);
  try {
    // Asked as the signed-in user: the server answers only about tokens
    // of this organization.
    const r = await api("/api/v1/token/info", { method: "POST", body: JSON.stringify({ token: tok }) });
    $("#debug-verdict").textContent = JSON.stringify(r, null, 2);
  } catch (e) { $("#debug-verdict").textContent = e.message; }
}

async function loadAudit() {
  try {
    const a = await api("/api/v1/audit_events");
    $("#audit-rows").replaceChildren(...a.data.map((ev) => { const tr = document.createElement("tr"); cells(tr, [ev.created_at, ev.event, ev.subject, ev.detail, ev.actor]); return tr; }));
  } catch (e) { flash(e.message, true); }
}

document.addEventListener("DOMContentLoaded", async () => {
  $("#pat-form").addEventListener("submit", createPAT);
  $("#bot-form").addEventListener("submit", createBot);
  $("#copy-pat").addEventListener("click", () => copy("#pat-secret"));
  $("#copy-bot").addEventListener("click", () => copy("#bot-secret"));
  $("#debug-go").addEventListener("click", inspectToken);
  $("#signin-form").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", async () => {
    if (session) {
      await fetch("/api/v1/auth/logout", { method: "POST", headers: { Authorization: "Bearer " + session.token } }).catch(() => {});
    }
    signOut();
  });
  $("#reply-form").addEventListener("submit", reply);
  $("#reply").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#reply-form").requestSubmit(); } });
  $("#assign").addEventListener("click", () => updateConversation({ assignee_id: session.user.id }, "Assigned to you."));
  $("#resolve").addEventListener("click", () => updateConversation({ status: "resolved" }, "Resolved."));
  $("#reset-token").addEventListener("click", resetToken);
  $("#copy-token").addEventListener("click", () => copy("#api-token"));
  $("#copy-secret").addEventListener("click", () => copy("#client-secret"));
  $("#client-form").addEventListener("submit", saveClient);
  $("#client-cancel").addEventListener("click", () => editClient(null));
  for (const a of document.querySelectorAll("nav a")) a.addEventListener("click", () => show(a.dataset.view));
  if (await refresh()) start(); else $("#signin").hidden = false;
});
