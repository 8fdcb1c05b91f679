// Personal access tokens: created on the page, shown once, never in the list afterwards; a form
// posted with a tampered CSRF token is refused and creates nothing.

export async function run(ctx) {
  const { page, check } = ctx;
  await ctx.visit("/console/tokens", "tokens");
  const made = await ctx.submit("#token-form", { "#token-name": "laptop", "#token-expires": "30" }, "#token-submit");
  check(made.status() === 201, `creating a token answered ${made.status()}: ${await page.locator("main").innerText()}`);
  const token = (await page.locator("#new-token").innerText()).trim();
  check(token.startsWith("kwp_"), `the new token reads ${JSON.stringify(token)}`);
  await ctx.screenshot("token-created");
  // It works on the API as the owner.
  const me = await ctx.api("GET", "/api/v1/tokens", null, token);
  check(me.status === 200, `the new token is refused by the API: ${me.status}`);

  // Back on the list it is named, and its secret is gone for good.
  await ctx.visit("/console/tokens", "tokens-after");
  const html = await page.content();
  check(html.includes("laptop"), "the list does not name the new token");
  check(!html.includes(token) && !html.includes(token.slice(0, -4)), "the token's secret is in the list");

  // A tampered CSRF token: the server refuses the form and makes nothing.
  await page.locator("#token-form input[name=csrf]").evaluate((el) => {
    el.value = `${el.value.slice(0, -2)}${el.value.endsWith("AA") ? "BB" : "AA"}`;
  });
  const refused = await ctx.expectRefusal(() => ctx.submit("#token-form", { "#token-name": "forged" }, "#token-submit"));
  check(refused.status() === 403, `a tampered CSRF token answered ${refused.status()}`);
  await ctx.screenshot("csrf-refused");
  await page.goto(`${ctx.baseUrl}/console/tokens`);
  check(!(await page.content()).includes("forged"), "the refused form created a token");

  // Revoking asks first (the page's script), then the token stops working.
  const row = page.locator("#tokens tbody tr", { hasText: "laptop" });
  const [revoked] = await Promise.all([page.waitForNavigation(), row.locator("button.danger").click()]);
  check(revoked.status() === 200 && (await row.innerText()).includes("revoked"), `revoking answered ${revoked.status()}`);
  const after = await ctx.api("GET", "/api/v1/tokens", null, token);
  check(after.status === 401, `a revoked token still answers ${after.status}`);
}
