// The audit log: the events of this run are listed, filters narrow them, "Verify chain" says OK.

export async function run(ctx) {
  const { page, check } = ctx;
  await ctx.visit("/console/audit", "audit");
  check((await page.locator("#events tbody tr").count()) > 0, "the audit log lists no events");
  await ctx.submit("#audit-filters", { "#filter-action": "auth.login" }, "#filter-submit");
  const kinds = await page.locator("#events td[data-label=Action]").allInnerTexts();
  check(kinds.length > 0 && kinds.every((k) => k === "auth.login"), `the action filter shows ${kinds.join(", ")}`);
  await ctx.screenshot("audit-filtered");
  const verified = await ctx.submit("#verify-form", {}, "#verify-submit");
  check(verified.status() === 200, `verifying answered ${verified.status()}`);
  const text = await page.locator("main").innerText();
  check(text.includes("Chain verified"), `verifying the chain says: ${text.slice(0, 300)}`);
  await ctx.screenshot("audit-verified");
}
