// What every flow gets: a browser context per person, sign-in, CSRF-aware form submission,
// screenshots, and the watchers that fail a flow on a console error, a CSP violation or a
// console response without the CSP header.

import fs from "node:fs";
import path from "node:path";

export class FlowError extends Error {}

export function check(condition, message) {
  if (!condition) {
    throw new FlowError(message);
  }
}

/// Fields of the environment the Rust test (tests/e2e/console_browser.rs) sets.
export function settings() {
  const need = (name) => {
    const value = process.env[name];
    if (!value) {
      throw new FlowError(`${name} is not set: run this through tests/e2e/console_browser.rs (cargo nextest run -p keyward --test e2e -E 'test(/console_browser/)')`);
    }
    return value;
  };
  // With a setup link the server is fresh and the runner creates the owner; without one it was
  // bootstrapped by the test, which names the owner and, for the gateway flows, the gateway.
  const setupLink = process.env.KEYWARD_SETUP_LINK || "";
  return {
    baseUrl: need("KEYWARD_CONSOLE_URL").replace(/\/$/, ""),
    setupLink,
    server: setupLink ? "fresh" : "bootstrapped",
    owner: setupLink
      ? null
      : { email: need("KEYWARD_OWNER_EMAIL"), password: need("KEYWARD_OWNER_PASSWORD"), token: need("KEYWARD_OWNER_TOKEN") },
    gatewayUrl: (process.env.KEYWARD_GATEWAY_URL || "").replace(/\/$/, ""),
    gatewayToken: process.env.KEYWARD_GATEWAY_TOKEN || "",
    chromium: process.env.KEYWARD_CHROMIUM || "/usr/bin/chromium",
    screenshotDir: process.env.KEYWARD_SCREENSHOT_DIR || path.resolve("target/console-screenshots"),
    only: (process.env.KEYWARD_CONSOLE_FLOWS || "").split(",").filter(Boolean),
  };
}

/// Collects what went wrong in the pages of one flow; `problems()` lists it at the end.
export class Watcher {
  constructor(baseUrl) {
    this.baseUrl = baseUrl;
    this.issues = [];
    this.documents = 0;
    // While > 0, the status line Chromium logs for an expected refusal (403 and the like) is no error.
    this.refusalsExpected = 0;
  }

  attach(page, who) {
    page.on("console", (msg) => {
      if (msg.type() !== "error") {
        return;
      }
      const text = msg.text();
      if (this.refusalsExpected > 0 && /Failed to load resource: the server responded with a status of 4\d\d/.test(text)) {
        return;
      }
      this.issues.push(`${who}: console error on ${page.url()}: ${text}`);
    });
    page.on("pageerror", (err) => this.issues.push(`${who}: script error on ${page.url()}: ${err.message}`));
    page.on("response", (res) => {
      const req = res.request();
      if (!res.url().startsWith(this.baseUrl) || req.resourceType() !== "document") {
        return;
      }
      this.documents += 1;
      const csp = res.headers()["content-security-policy"] || "";
      for (const part of ["default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"]) {
        if (!csp.includes(part)) {
          this.issues.push(`${who}: ${req.method()} ${res.url()} (${res.status()}) has no "${part}" in its CSP header: ${JSON.stringify(csp)}`);
        }
      }
      if (/script-src[^;]*'unsafe-inline'/.test(csp) || /script-src[^;]*'unsafe-eval'/.test(csp)) {
        this.issues.push(`${who}: ${res.url()} allows inline or eval'd script: ${csp}`);
      }
    });
  }

  async expectRefusal(fn) {
    this.refusalsExpected += 1;
    try {
      return await fn();
    } finally {
      this.refusalsExpected -= 1;
    }
  }
}

/// Fills and submits the form `formSel` by clicking `submitSel`, returning the response of the
/// navigation it causes. The form's own hidden `csrf` field goes with it unchanged, as a person's
/// browser would send it.
export async function submit(page, formSel, fields, submitSel) {
  const form = page.locator(formSel);
  check((await form.count()) === 1, `no form ${formSel} on ${page.url()}`);
  for (const [sel, value] of Object.entries(fields || {})) {
    const input = page.locator(sel);
    const tag = await input.evaluate((el) => el.tagName.toLowerCase());
    if (tag === "select") {
      await input.selectOption(value);
    } else {
      await input.fill(value);
    }
  }
  const button = submitSel ? page.locator(submitSel) : form.locator("button[type=submit]").first();
  const [response] = await Promise.all([
    page.waitForNavigation({ waitUntil: "load" }),
    button.click(),
  ]);
  return response;
}

/// Signs `page` in on /login, the way a person does.
export async function signIn(page, baseUrl, email, password) {
  await page.goto(`${baseUrl}/login?next=%2Fconsole`);
  const res = await submit(page, "#login-form", { "#login-email": email, "#login-password": password }, "#login-submit");
  check(res && res.status() === 200, `signing in as ${email} answered ${res && res.status()}: ${await page.locator("main").innerText()}`);
  check(new URL(page.url()).pathname === "/console", `signing in as ${email} ended on ${page.url()}, not /console`);
  const who = await page.locator("#signed-in-as").innerText();
  check(who.includes(email), `the header names ${JSON.stringify(who)}, not ${email}`);
}

/// Keeps a full-page screenshot of what `page` shows as `<dir>/<name>.png`. Shown-once secrets
/// (`.secret`: tokens, invitation links) are painted over: the pictures are kept as artifacts.
export async function screenshot(page, dir, name) {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name.replace(/[^A-Za-z0-9_.-]+/g, "-")}.png`);
  await page.screenshot({ path: file, fullPage: true, mask: [page.locator(".secret")], maskColor: "#9aa4b2" });
  return file;
}

/// A JSON call on the API with a bearer token (the CA comes from NODE_EXTRA_CA_CERTS).
export async function api(baseUrl, token, method, apiPath, body) {
  const res = await fetch(`${baseUrl}${apiPath}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: res.status, body: json };
}
