// Drives the Keyward console in Debian's chromium. It starts nothing itself: the Rust test
// tests/e2e/console_browser.rs starts a fresh `keyward serve` and passes its URL and one-time
// setup link in the environment (KEYWARD_CONSOLE_URL, KEYWARD_SETUP_LINK, NODE_EXTRA_CA_CERTS).
//
// First the owner is created through the setup page, then every file in flows/ runs in name
// order, each with a fresh signed-in owner page (see `context` below). Without KEYWARD_SETUP_LINK
// the server was bootstrapped by the test (KEYWARD_OWNER_EMAIL, _PASSWORD, _TOKEN name its owner)
// and only the flows exporting `server = "bootstrapped"` run; with it, only the others.
//
// A flow fails on a thrown error, a console error or CSP violation in any of its pages, or a
// console response without the CSP header. Screenshots land in KEYWARD_SCREENSHOT_DIR (default
// target/console-screenshots).

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

import { FlowError, Watcher, api, check, screenshot, settings, signIn, submit } from "./lib.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const OWNER = { email: "owner@acme.example", password: "the owner's long console password" };

/// The first-login setup page, as a person opening the printed link uses it.
async function setUp(browser, env, watcher) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  watcher.attach(page, "setup");
  const res = await page.goto(env.setupLink);
  check(res.status() === 200, `the setup page answered ${res.status()}`);
  await page.locator("#org").fill("Acme");
  await page.locator("#email").fill(OWNER.email);
  await page.locator("#setup-submit").click();
  await page.locator("#done").waitFor({ state: "visible", timeout: 15000 });
  const token = (await page.locator("#token").innerText()).trim();
  check(token.startsWith("kwp_"), `the setup page shows ${JSON.stringify(token)}, not a personal access token`);
  check(!page.url().includes("token="), `the setup secret stays in the address bar: ${page.url()}`);
  await screenshot(page, env.screenshotDir, "setup-done");
  await context.close();

  // The console signs in with a password; the owner sets one with the token just shown.
  const set = await api(env.baseUrl, token, "PUT", "/api/v1/me/password", { password: OWNER.password });
  check(set.status === 204, `setting the owner's password answered ${set.status}: ${JSON.stringify(set.body)}`);
  return { ...OWNER, token };
}

/// What a flow gets: `page` (the owner, signed in, on /console) and helpers bound to it.
async function context(browser, env, watcher, owner, flow, shared) {
  const contexts = [];
  const newPage = async (who, viewport) => {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: viewport || { width: 1280, height: 800 } });
    contexts.push(ctx);
    const page = await ctx.newPage();
    // Destructive buttons ask through confirm(); a person says yes.
    page.on("dialog", (dialog) => dialog.accept());
    watcher.attach(page, `${flow}/${who}`);
    return page;
  };
  const page = await newPage("owner");
  await signIn(page, env.baseUrl, owner.email, owner.password);
  let shots = 0;
  const ctx = {
    browser,
    baseUrl: env.baseUrl,
    owner,
    page,
    check,
    /// KEYWARD_GATEWAY_URL and KEYWARD_GATEWAY_TOKEN (a member's token) on the bootstrapped server.
    gatewayUrl: env.gatewayUrl,
    gatewayToken: env.gatewayToken,
    /// One object for every flow of the run: `shared.secrets` collects the secret values flows
    /// create, which no page may show (flows/nav-crawl.mjs).
    shared,
    /// Another person's browser (its own cookies); `viewport` e.g. { width: 390, height: 844 }.
    newPage,
    signIn: (p, email, password) => signIn(p, env.baseUrl, email, password),
    /// Fills `fields` ({selector: value}) of `formSel`, clicks its submit button, returns the response.
    submit: (formSel, fields, submitSel, p = page) => submit(p, formSel, fields, submitSel),
    /// Screenshot as `<flow>-<n>-<name>.png`.
    screenshot: (name, p = page) => screenshot(p, env.screenshotDir, `${flow}-${String(++shots).padStart(2, "0")}-${name}`),
    /// Opens `pathname`, expects 200 and keeps a screenshot; returns the response.
    visit: async (pathname, name, p = page) => {
      const res = await p.goto(`${env.baseUrl}${pathname}`);
      check(res.status() === 200, `${pathname} answered ${res.status()}: ${await p.locator("main").innerText().catch(() => "")}`);
      await ctx.screenshot(name || pathname.replace(/^\/console\/?/, "") || "overview", p);
      return res;
    },
    /// Runs `fn` during which a 4xx page is what the flow expects (not a console error).
    expectRefusal: (fn) => watcher.expectRefusal(fn),
    api: (method, apiPath, body, token = owner.token) => api(env.baseUrl, token, method, apiPath, body),
  };
  return { ctx, close: () => Promise.all(contexts.map((c) => c.close())) };
}

async function main() {
  const env = settings();
  check(fs.existsSync(env.chromium), `no chromium at ${env.chromium}: install Debian's chromium package (scripts/test does)`);
  const browser = await chromium.launch({ executablePath: env.chromium, args: ["--no-sandbox"] });
  const failures = [];
  try {
    let owner = env.owner;
    if (!owner) {
      const setupWatch = new Watcher(env.baseUrl);
      owner = await setUp(browser, env, setupWatch);
      if (setupWatch.issues.length) {
        failures.push(`setup:\n  ${setupWatch.issues.join("\n  ")}`);
      }
    }
    const shared = { secrets: [owner.token, owner.password] };
    const files = fs
      .readdirSync(path.join(here, "flows"))
      .filter((f) => f.endsWith(".mjs"))
      .sort();
    for (const file of files) {
      const flow = file.replace(/\.mjs$/, "");
      if (env.only.length && !env.only.includes(flow)) {
        continue;
      }
      const module = await import(pathToFileURL(path.join(here, "flows", file)).href);
      if ((module.server || "fresh") !== env.server) {
        continue;
      }
      const watcher = new Watcher(env.baseUrl);
      const started = Date.now();
      let made = null;
      try {
        made = await context(browser, env, watcher, owner, flow, shared);
        await module.run(made.ctx);
      } catch (e) {
        watcher.issues.unshift(e instanceof FlowError ? e.message : e.stack || String(e));
      } finally {
        if (made) {
          await made.close();
        }
      }
      const took = ((Date.now() - started) / 1000).toFixed(1);
      if (watcher.issues.length) {
        failures.push(`${flow}:\n  ${watcher.issues.join("\n  ")}`);
        console.log(`FAIL ${flow} (${took} s)`);
      } else {
        console.log(`ok   ${flow} (${took} s, ${watcher.documents} pages)`);
      }
    }
  } finally {
    await browser.close();
  }
  console.log(`screenshots: ${env.screenshotDir}`);
  if (failures.length) {
    console.error(`\n${failures.length} console flow(s) failed:\n${failures.join("\n")}`);
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(e instanceof FlowError ? e.message : e.stack || String(e));
  process.exit(1);
});
