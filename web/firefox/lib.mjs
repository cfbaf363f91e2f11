// Shared by the Firefox test scripts (web/firefox_browser_test.go runs
// them): launch Debian's Firefox ESR over WebDriver BiDi with
// puppeteer-core, poll pages, and report one JSON object on stdout.
//
// Each script is `node web/firefox/NAME.mjs '<input JSON>'`. It prints
// {"browser": "...", "parts": {NAME: {ms, error?, ...}}} and exits 0 when
// it could report at all; the Go test judges the parts. Whatever else
// Firefox or puppeteer say goes to stderr.
//
// The environment names the browser and the library:
//   CHATAUTH_FIREFOX    the firefox-esr binary (scripts/firefox.sh ensure_firefox)
//   CHATAUTH_PUPPETEER  the folder whose node_modules holds puppeteer-core
//                       (ensure_puppeteer; not in the repo, so it is loaded
//                       with createRequire rather than a bare import)
import { createRequire } from "node:module";
import path from "node:path";

const puppeteerDir = process.env.CHATAUTH_PUPPETEER;
if (!puppeteerDir) throw new Error("CHATAUTH_PUPPETEER is not set (scripts/firefox.sh ensure_puppeteer prints it)");
const puppeteer = createRequire(path.join(puppeteerDir, "package.json"))("puppeteer-core");

// Strict tracking protection: total cookie protection (cookieBehavior 5,
// third-party cookies partitioned by the top-level site) and tracking
// protection on, as Firefox's "Strict" setting has them. The rest keeps a
// root-run, offline Firefox quiet: no first run, no updates, telemetry,
// safe browsing, captive portal or connectivity probes.
export const prefs = {
  "browser.contentblocking.category": "strict",
  "network.cookie.cookieBehavior": 5,
  "network.cookie.cookieBehavior.pbmode": 5,
  "privacy.trackingprotection.enabled": true,
  "privacy.trackingprotection.pbmode.enabled": true,
  "privacy.trackingprotection.socialtracking.enabled": true,
  "privacy.trackingprotection.cryptomining.enabled": true,
  "privacy.trackingprotection.fingerprinting.enabled": true,
  "privacy.partition.network_state": true,

  "app.update.enabled": false,
  "app.update.auto": false,
  "app.update.checkInstallTime": false,
  "app.normandy.enabled": false,
  "app.shield.optoutstudies.enabled": false,
  "messaging-system.rsexperimentloader.enabled": false,
  "browser.shell.checkDefaultBrowser": false,
  "browser.aboutwelcome.enabled": false,
  "browser.startup.homepage_override.mstone": "ignore",
  "browser.startup.firstrunSkipsHomepage": true,
  "browser.discovery.enabled": false,
  "browser.newtabpage.activity-stream.feeds.section.topstories": false,
  "browser.newtabpage.activity-stream.feeds.snippets": false,
  "browser.newtabpage.activity-stream.showSponsored": false,
  "browser.newtabpage.activity-stream.showSponsoredTopSites": false,
  "browser.region.network.url": "",
  "browser.region.update.enabled": false,
  "browser.search.geoSpecificDefaults": false,
  "browser.ping-centre.telemetry": false,
  "datareporting.healthreport.uploadEnabled": false,
  "datareporting.healthreport.service.enabled": false,
  "datareporting.policy.dataSubmissionEnabled": false,
  "toolkit.telemetry.enabled": false,
  "toolkit.telemetry.unified": false,
  "toolkit.telemetry.archive.enabled": false,
  "toolkit.telemetry.server": "",
  "toolkit.telemetry.shutdownPingSender.enabled": false,
  "toolkit.telemetry.firstShutdownPing.enabled": false,
  "toolkit.telemetry.newProfilePing.enabled": false,
  "toolkit.telemetry.updatePing.enabled": false,
  "toolkit.telemetry.bhrPing.enabled": false,
  "browser.safebrowsing.malware.enabled": false,
  "browser.safebrowsing.phishing.enabled": false,
  "browser.safebrowsing.downloads.enabled": false,
  "browser.safebrowsing.downloads.remote.enabled": false,
  "browser.safebrowsing.blockedURIs.enabled": false,
  "browser.safebrowsing.provider.google4.updateURL": "",
  "browser.safebrowsing.provider.mozilla.updateURL": "",
  "extensions.update.enabled": false,
  "extensions.getAddons.cache.enabled": false,
  "extensions.blocklist.enabled": false,
  "network.captive-portal-service.enabled": false,
  "network.connectivity-service.enabled": false,
  "network.dns.disablePrefetch": true,
  "network.prefetch-next": false,
  "network.http.speculative-parallel-limit": 0,
  "network.trr.mode": 5,
  "media.gmp-manager.updateEnabled": false,
  "services.settings.poll_interval": 86400 * 365,
  "dom.push.connection.enabled": false,
  "identity.fxaccounts.enabled": false,
};

// launch starts one headless Firefox with a fresh profile (puppeteer makes
// a temporary one and removes it at close).
export async function launch() {
  const executablePath = process.env.CHATAUTH_FIREFOX;
  if (!executablePath) throw new Error("CHATAUTH_FIREFOX is not set (scripts/firefox.sh ensure_firefox prints it)");
  return puppeteer.launch({
    browser: "firefox",
    executablePath,
    protocol: "webDriverBiDi",
    headless: true,
    args: ["--no-remote", "--width=1280", "--height=900"],
    extraPrefsFirefox: prefs,
    // Firefox as root, headless: it needs no display and keeps no lock on
    // $HOME's profiles (the profile is puppeteer's temporary one).
    env: { ...process.env, MOZ_HEADLESS: "1", MOZ_CRASHREPORTER_DISABLE: "1" },
    timeout: 60_000,
    protocolTimeout: 60_000,
  });
}

const watched = [];

// watch keeps what a page says on its console and throws, for the report.
export function watch(page) {
  const log = [];
  page.on("console", (m) => { if (log.length < 50) log.push(`${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => { if (log.length < 50) log.push(`pageerror: ${e && e.message ? e.message : e}`); });
  page.chatauthLog = log;
  watched.push({ url: () => page.url(), log });
  return log;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// until polls fn (a page function returning a truthy value when done)
// every 100 ms; it throws naming what it waited for.
export async function until(page, what, fn, timeout = 20_000, ...args) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await page.evaluate(fn, ...args);
      if (last) return last;
    } catch (e) {
      // A navigation in progress destroys the context: poll again.
      last = String(e && e.message ? e.message : e);
    }
    if (Date.now() > deadline) throw new Error(`waiting for ${what}: timed out after ${timeout} ms (last: ${JSON.stringify(last)})`);
    await sleep(100);
  }
}

// main runs the script's parts and prints the report. A part is an async
// function returning the facts it observed; its time is recorded beside
// them, and an exception becomes its "error" (the page's console with it).
export async function main(body) {
  const report = { browser: "", parts: {} };
  let browser;
  const part = async (name, fn) => {
    const t0 = Date.now();
    const entry = (report.parts[name] = {});
    try {
      Object.assign(entry, await fn());
    } catch (e) {
      entry.error = String(e && e.stack ? e.stack : e);
      // What the pages said, to tell an SDK error from a test's.
      entry.console = watched.filter((w) => w.log.length).map((w) => `${w.url()}:\n  ${w.log.join("\n  ")}`);
    }
    entry.ms = Date.now() - t0;
    return entry;
  };
  try {
    const input = JSON.parse(process.argv[2] || "{}");
    const t0 = Date.now();
    browser = await launch();
    report.browser = await browser.version();
    report.launchMs = Date.now() - t0;
    await body({ browser, input, part });
  } catch (e) {
    report.error = String(e && e.stack ? e.stack : e);
  } finally {
    if (browser) await browser.close().catch((e) => process.stderr.write(`close: ${e}\n`));
  }
  process.stdout.write(JSON.stringify(report) + "\n");
}
