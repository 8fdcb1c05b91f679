// Members: the owner invites a Member through the page; the Member joins in their own browser,
// sees no management forms, and a management form posted anyway (with the Member's own valid
// CSRF token) is refused by the server with 403.

const MEMBER = { email: "bob@acme.example", password: "bob's long enough password" };

export async function run(ctx) {
  const { page, check } = ctx;
  await ctx.visit("/console/members", "members");
  const invited = await ctx.submit("#invite-form", { "#invite-email": MEMBER.email, "#invite-role": "member" }, "#invite-submit");
  check(invited.status() < 400, `the invitation answered ${invited.status()}`);
  const link = (await page.locator("#invitation-url").innerText()).trim();
  check(link.includes("/invite#token="), `the invited page shows ${JSON.stringify(link)}, not an invitation link`);
  await ctx.screenshot("invited");

  // Bob, in another browser: the link, a password, and he is in.
  const bob = await ctx.newPage("member");
  await bob.goto(link);
  check(!bob.url().includes("token="), `the invitation secret stays in the address bar: ${bob.url()}`);
  await ctx.screenshot("invite-page", bob);
  const joined = await ctx.submit("#invite-new", { "#invite-password": MEMBER.password }, "#invite-new-submit", bob);
  check(joined.status() === 200, `joining answered ${joined.status()}: ${await bob.locator("main").innerText()}`);
  await ctx.visit("/console/members", "members-as-member", bob);
  check((await bob.locator("#members").innerText()).includes(MEMBER.email), "the member list does not name bob");
  check((await bob.locator("#invite-form").count()) === 0, "a Member is shown the invite form");
  check((await bob.locator("form[action$='/remove']").count()) === 0, "a Member is shown remove buttons");

  // The hidden button is not the protection: bob's browser posts the owner's removal anyway.
  const csrf = await bob.locator("input[name=csrf]").first().inputValue();
  const refused = await ctx.expectRefusal(async () => {
    await bob.evaluate(({ action, csrf }) => {
      const form = document.createElement("form");
      form.method = "post";
      form.action = action;
      form.id = "forged-remove";
      const field = document.createElement("input");
      field.type = "hidden";
      field.name = "csrf";
      field.value = csrf;
      form.append(field);
      document.body.append(form);
    }, { action: `/console/members/${encodeURIComponent(ctx.owner.email)}/remove`, csrf });
    const [res] = await Promise.all([bob.waitForNavigation(), bob.evaluate(() => document.getElementById("forged-remove").submit())]);
    return res;
  });
  check(refused.status() === 403, `a Member removing the owner answered ${refused.status()}`);
  check((await bob.locator("main").innerText()).includes("does not grant"), `the refusal does not say why: ${await bob.locator("main").innerText()}`);
  await ctx.screenshot("member-refused", bob);

  // The owner is still there, still the owner.
  await page.goto(`${ctx.baseUrl}/console/members`);
  const rows = await page.locator("#members tbody tr").allInnerTexts();
  check(rows.some((r) => r.includes(ctx.owner.email) && r.includes("owner")), `the owner's row changed: ${rows.join(" | ")}`);
}
