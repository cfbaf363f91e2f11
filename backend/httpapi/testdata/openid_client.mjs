// An OpenID Connect relying party built on the npm openid-client package
// (unmodified), run by TestOIDCWithNodeOpenIDClient against a real
// chatauth on a loopback port. It drives the sign-in and consent pages
// with fetch and a small cookie jar, the way a browser would, and prints
// one JSON line of what it saw; any failed check throws (exit code 1).
//
// Environment: ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI,
// POST_LOGOUT_URI, EMAIL, PASSWORD.
import * as client from 'openid-client';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const issuer = env('ISSUER');
const redirectURI = env('REDIRECT_URI');
const check = (ok, what) => { if (!ok) throw new Error(`check failed: ${what}`); };

// The browser: cookies of the issuer's origin, no redirects followed.
const jar = new Map();
async function browse(url, init = {}) {
  const headers = new Headers(init.headers || {});
  if (jar.size) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '));
  const res = await fetch(url, { ...init, headers, redirect: 'manual' });
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    jar.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
  }
  return { status: res.status, location: res.headers.get('location'), body: await res.text() };
}
// html/template escapes attribute values: &amp; &lt; &gt; &quot; and
// numeric references such as &#43; and &#34;.
const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const unescape = (s) => s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) =>
  e[0] !== '#' ? (named[e] ?? m) : String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)));
function hidden(body) {
  const out = {};
  for (const m of body.matchAll(/name="(csrf_token|request)" value="([^"]*)"/g)) out[m[1]] = unescape(m[2]);
  check(out.csrf_token, `a form on the page: ${body.slice(0, 300)}`);
  return out;
}
const submit = (page, fields) => browse(`${issuer}/oauth/authorize`, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ ...hidden(page.body), ...fields }).toString(),
});

// Discovery (plain http on loopback needs allowInsecureRequests).
const config = await client.discovery(new URL(issuer), env('CLIENT_ID'), undefined,
  client.ClientSecretBasic(env('CLIENT_SECRET')), { execute: [client.allowInsecureRequests] });
// Verify the ID token's signature against the JWKS, not only its claims.
client.enableNonRepudiationChecks(config);
const meta = config.serverMetadata();
check(meta.issuer === issuer, `issuer ${meta.issuer}`);
check(meta.authorization_response_iss_parameter_supported === true, 'RFC 9207 advertised');

// Authorization code + PKCE + nonce + state.
const verifier = client.randomPKCECodeVerifier();
const nonce = client.randomNonce();
const state = client.randomState();
const authURL = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectURI, scope: 'openid profile email read',
  code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  nonce, state, login_hint: env('EMAIL'),
});
let page = await browse(authURL.href);
check(page.status === 200 && page.body.includes('value="login"'), `sign-in page: ${page.status}`);
check(page.body.includes(`value="${env('EMAIL')}"`), 'login_hint prefills the email');
page = await submit(page, { action: 'login', email: env('EMAIL'), password: env('PASSWORD') });
if (page.status === 200 && page.body.includes('value="approve"')) page = await submit(page, { action: 'approve' });
check(page.status === 303 || page.status === 302, `redirect back: ${page.status} ${(page.body.match(/<main[\s\S]*<\/main>/) || [page.body])[0].slice(0, 400)}`);
const callback = new URL(page.location);
check(callback.searchParams.get('iss') === issuer, `iss in the redirect: ${callback}`);

// The token request; openid-client checks iss (RFC 9207), state, the ID
// token's signature, iss, aud, exp, iat, nonce and at_hash.
const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true });
const claims = tokens.claims();
check(claims.iss === issuer && [].concat(claims.aud).includes(env('CLIENT_ID')) && claims.azp === env('CLIENT_ID') && claims.nonce === nonce, `ID token claims ${JSON.stringify(claims)}`);
check(typeof claims.auth_time === 'number' && claims.sid && claims.email === env('EMAIL'), `auth_time, sid, email: ${JSON.stringify(claims)}`);

// userinfo, checked against the ID token's sub.
const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
check(info.sub === claims.sub && info.email === env('EMAIL') && info.name, `userinfo ${JSON.stringify(info)}`);

// Refresh: a new ID token for the same sub, with the same auth_time.
const fresh = await client.refreshTokenGrant(config, tokens.refresh_token);
const freshClaims = fresh.claims();
check(fresh.access_token && fresh.access_token !== tokens.access_token, 'a new access token');
check(freshClaims && freshClaims.sub === claims.sub && freshClaims.auth_time === claims.auth_time && !freshClaims.nonce, `refreshed ID token ${JSON.stringify(freshClaims)}`);

// RP-initiated logout: the URL openid-client builds, followed by the
// browser, sends it to the registered URI with state, and ends the grant.
const logoutURL = client.buildEndSessionUrl(config, { id_token_hint: fresh.id_token, post_logout_redirect_uri: env('POST_LOGOUT_URI'), state: 'bye' });
check(logoutURL.href.startsWith(`${issuer}/oauth/end_session?`), `end_session URL ${logoutURL}`);
page = await browse(logoutURL.href);
check(page.status === 302 && page.location === `${env('POST_LOGOUT_URI')}?state=bye`, `end_session: ${page.status} ${page.location}`);
let refused = false;
try {
  await client.refreshTokenGrant(config, fresh.refresh_token);
} catch (e) {
  refused = e.error === 'invalid_grant';
}
check(refused, 'refresh after logout is invalid_grant');

console.log(JSON.stringify({ sub: claims.sub, sid: claims.sid, alg: tokens.id_token.split('.')[0], logout: logoutURL.href.length > 0 }));
