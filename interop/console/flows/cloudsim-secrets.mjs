// Secret providers against `keyward cloudsim` (bootstrapped server, see
// tests/e2e/console_browser.rs): one credential whose Test Connection is green, one whose trust
// policy names another organization (red, the page naming the failing step with its code, cause
// and fix), a static one whose keys are never shown again; then an environment variable whose
// secret name is picked from the autocomplete list console.js fills while a person types.

export const server = "bootstrapped";

const ROLE = "arn:aws:iam::123456789012:role";
// The static-reader user of tests/fixtures/cloudsim-broken-world.toml.
const STATIC_KEY_ID = "AKIAKEYWARDSTATIC001";
const STATIC_SECRET = "static-reader-secret-access-key-0123456789";
// What cloudsim stores under openai-api-key: the env var names it, no page shows it.
const AWS_VALUE = "aws-value-1";
const DIRECT_SECRET = "direct-browser-secret-do-not-show-5151";

/// The names the datalist offers once they satisfy `ready` (console.js fills it after a pause).
async function offered(page, check, ready, what) {
  try {
    await page.waitForFunction(
      (want) => {
        const names = [...document.querySelectorAll("#env-secret-names option")].map((o) => o.value);
        return want === "none" ? names.length === 0 : names.length > 0 && names.every((n) => n.startsWith(want));
      },
      ready,
      { timeout: 10000 },
    );
  } catch {
    const names = await page.locator("#env-secret-names option").evaluateAll((os) => os.map((o) => o.value));
    check(false, `the autocomplete list never offered ${what}; it offers ${JSON.stringify(names)}, hint ${JSON.stringify(await page.locator("#env-secret-hint").innerText())}`);
  }
  return page.locator("#env-secret-names option").evaluateAll((os) => os.map((o) => o.value));
}

export async function run(ctx) {
  const { page, check } = ctx;
  ctx.shared.secrets.push(STATIC_KEY_ID, STATIC_SECRET, AWS_VALUE, DIRECT_SECRET);

  // The workload identity configs the credentials use (their pages are flows/cloud.mjs's).
  for (const [name, role] of [["aws-good", "keyward-secrets-reader"], ["aws-wrong-sub", "wrong-sub"]]) {
    const made = await ctx.api("POST", "/api/v1/workload-identity-configs", {
      name, cloud: "aws", role_arn: `${ROLE}/${role}`, region: "us-east-1", subject: "organization",
    });
    check(made.status === 201, `creating config ${name} answered ${made.status}: ${JSON.stringify(made.body)}`);
  }

  await ctx.visit("/console/secret-providers", "secret-providers");
  for (const name of ["aws-good", "aws-wrong-sub"]) {
    const res = await ctx.submit("#sp-create", {
      "#sp-name": name,
      "#sp-provider": "aws_secrets_manager",
      "#sp-auth": "workload_identity",
      "#sp-wi-config": name,
      "#sp-region": "us-east-1",
    }, "#sp-submit");
    check(res.status() === 200, `creating credential ${name} answered ${res.status()}: ${await page.locator("main").innerText()}`);
    check(await page.locator(`#sp-row-${name}`).isVisible(), `credential ${name} is not listed`);
  }
  const made = await ctx.submit("#sp-create", {
    "#sp-name": "aws-static",
    "#sp-provider": "aws_secrets_manager",
    "#sp-auth": "static",
    "#sp-region": "us-east-1",
    "#sp-static-access_key_id": STATIC_KEY_ID,
    "#sp-static-secret_access_key": STATIC_SECRET,
  }, "#sp-submit");
  check(made.status() === 200, `creating the static credential answered ${made.status()}: ${await page.locator("main").innerText()}`);
  const staticRow = await page.locator("#sp-row-aws-static").innerText();
  check(staticRow.includes("•••• set"), `the static credential's row does not say its keys are set: ${staticRow}`);
  await ctx.screenshot("secret-providers-created");
  const listed = await ctx.api("GET", "/api/v1/secret-providers");
  const byName = Object.fromEntries((listed.body || []).map((p) => [p.name, p]));
  check(byName["aws-good"] && byName["aws-good"].workload_identity_config === "aws-good", `the API: ${JSON.stringify(listed.body)}`);
  check(byName["aws-static"] && byName["aws-static"].static_configured === true, `the API: ${JSON.stringify(listed.body)}`);

  // Test Connection, green: every step passed.
  const green = await ctx.submit("#sp-test-form-aws-good", {}, "#sp-test-aws-good");
  check(green.status() === 200, `Test Connection answered ${green.status()}`);
  const greenBox = page.locator("#sp-test-result");
  check(await greenBox.isVisible(), "no Test Connection result on the page");
  const greenText = await greenBox.innerText();
  check(await greenBox.evaluate((el) => el.classList.contains("ok")) && greenText.includes("passed"),
    `aws-good's Test Connection is not green: ${greenText}`);
  check((await page.locator("#sp-test-steps li.step.failed").count()) === 0, `a step failed: ${greenText}`);
  check((await page.locator("#sp-test-steps li.step.ok").count()) > 0, `no step shown: ${greenText}`);
  await ctx.screenshot("test-connection-green");

  // Red: the trust policy names another organization; the page names the step, code, cause, fix.
  const red = await ctx.submit("#sp-test-form-aws-wrong-sub", {}, "#sp-test-aws-wrong-sub");
  check(red.status() === 200, `Test Connection answered ${red.status()}`);
  const redBox = page.locator("#sp-test-result");
  const redText = await redBox.innerText();
  check(await redBox.evaluate((el) => el.classList.contains("failed")), `aws-wrong-sub's Test Connection is not red: ${redText}`);
  const failed = page.locator("#sp-test-steps li.step.failed");
  check((await failed.count()) === 1, `not one failed step: ${redText}`);
  const step = await failed.innerText();
  for (const part of ["AWS STS AssumeRoleWithWebIdentity", "Code:", "AccessDenied", "Cause:", "trust policy mismatch", "Fix:"]) {
    check(step.includes(part), `the failed step does not show "${part}": ${step}`);
  }
  const flash = await page.locator("#flash").innerText();
  check(flash.includes("Test Connection failed at: AWS STS AssumeRoleWithWebIdentity"), `the flash reads ${JSON.stringify(flash)}`);
  await ctx.screenshot("test-connection-red");

  // An environment variable naming a secret picked from the autocomplete list.
  await ctx.visit("/console/environment-variables", "environment-variables");
  await page.locator("#env-key").fill("MODEL_API_KEY");
  await page.locator("#env-source").selectOption("credential");
  await page.locator("#env-credential").selectOption({ label: "aws-good" });
  const input = page.locator("#env-secret-name");
  await input.click();
  await input.pressSequentially("open", { delay: 60 });
  const names = await offered(page, check, "open", "names starting with open");
  check(names.includes("openai-api-key"), `the list offers ${JSON.stringify(names)}, not openai-api-key`);
  await ctx.screenshot("env-autocomplete");
  // A prefix nothing has: the list empties (the names come from cloudsim, by prefix).
  await input.fill("");
  await input.pressSequentially("zz", { delay: 60 });
  await offered(page, check, "none", "nothing for zz");
  await input.fill("");
  await input.pressSequentially("openai", { delay: 60 });
  const picked = (await offered(page, check, "openai", "names starting with openai"))[0];
  // Choosing an entry of the browser's datalist popup puts its value into the input.
  await input.fill(picked);
  const saved = await ctx.submit("#env-create", {}, "#env-submit");
  check(saved.status() === 200, `creating the variable answered ${saved.status()}: ${await page.locator("main").innerText()}`);
  check(await page.locator("#env-row-MODEL_API_KEY").isVisible(), "MODEL_API_KEY is not listed");
  await ctx.screenshot("env-created");
  const vars = await ctx.api("GET", "/api/v1/environment-variables");
  const model = (vars.body || []).find((v) => v.key === "MODEL_API_KEY");
  check(model && model.credential === "aws-good" && model.secret_name === "openai-api-key",
    `the API shows ${JSON.stringify(model || vars.body)}, not aws-good / openai-api-key`);

  // A direct secret value too: sealed, masked on the API, never on a page.
  await page.locator("#env-secret").check();
  const sealed = await ctx.submit("#env-create", {
    "#env-key": "DB_PASSWORD", "#env-source": "direct", "#env-value": DIRECT_SECRET,
  }, "#env-submit");
  check(sealed.status() === 200, `creating DB_PASSWORD answered ${sealed.status()}: ${await page.locator("main").innerText()}`);
  const direct = (await ctx.api("GET", "/api/v1/environment-variables")).body.find((v) => v.key === "DB_PASSWORD");
  check(direct && direct.value === "********", `DB_PASSWORD on the API: ${JSON.stringify(direct)}`);

  for (const pathname of ["/console/environment-variables", `/console/environment-variables/${model.id}`, "/console/secret-providers"]) {
    const res = await page.goto(`${ctx.baseUrl}${pathname}`);
    const raw = await res.text();
    const html = await page.content();
    for (const secret of [AWS_VALUE, STATIC_KEY_ID, STATIC_SECRET, DIRECT_SECRET]) {
      check(!raw.includes(secret) && !html.includes(secret), `${pathname} shows a secret value`);
    }
  }
  await ctx.screenshot("env-edit");

  // A personal access token made on its page: one more value no page may show later.
  await ctx.visit("/console/tokens", "tokens");
  const token = await ctx.submit("#token-form", { "#token-name": "crawl-check", "#token-expires": "30" }, "#token-submit");
  check(token.status() === 201, `creating a token answered ${token.status()}`);
  ctx.shared.secrets.push((await page.locator("#new-token").innerText()).trim());
}
