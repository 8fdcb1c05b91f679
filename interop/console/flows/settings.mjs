// Settings pages: a custom role edited in the feature × level matrix is what the API answers; an
// automation token is shown once, on the answer to its form, and never on the pages after it.

export async function run(ctx) {
  const { page, check } = ctx;

  await ctx.visit("/console/roles", "roles");
  const created = await ctx.submit("#role-create-form", { "#role-name": "auditor", "#role-description": "reads the audit log" }, "#role-create");
  check(created.status() === 200, `creating a role answered ${created.status()}`);
  await page.locator("#grant-audit_log-read").check();
  const saved = await ctx.submit("#role-matrix", {}, "#role-save");
  check(saved.status() === 200, `saving the matrix answered ${saved.status()}: ${await page.locator("main").innerText()}`);
  await ctx.screenshot("role-matrix-saved");
  const roles = await ctx.api("GET", "/api/v1/roles");
  check(roles.status === 200, `GET /api/v1/roles answered ${roles.status}`);
  const auditor = (roles.body || []).find((r) => r.name === "auditor");
  check(auditor, `the API lists no role auditor: ${JSON.stringify(roles.body)}`);
  check(JSON.stringify(auditor).includes("audit_log"), `the API's auditor role has no audit_log grant: ${JSON.stringify(auditor)}`);

  await ctx.visit("/console/automations", "automations");
  const made = await ctx.submit("#automation-create-form", { "#automation-name": "browser-crew" }, "#automation-create");
  check(made.status() === 200, `creating an automation answered ${made.status()}`);
  const answer = await ctx.submit("#automation-token-form", { "#automation-token-name": "ci" }, "#automation-token-create");
  check(answer.status() === 201, `creating an automation token answered ${answer.status()}`);
  const token = (await page.locator("#new-automation-token").innerText()).trim();
  check(token.length > 20, `the new automation token reads ${JSON.stringify(token)}`);
  await ctx.screenshot("automation-token-created");
  const detail = page.url().replace(/\/tokens.*$/, "");
  await page.goto(detail);
  const html = await page.content();
  check(html.includes("ci"), "the automation page does not list the new token");
  check(!html.includes(token), "the automation token's secret is on the automation page");
}
