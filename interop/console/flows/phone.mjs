// Phone width (390 px): the pages fit without sideways scrolling and stay usable.

const PAGES = ["/console", "/console/members", "/console/tokens", "/console/audit"];

export async function run(ctx) {
  const { check } = ctx;
  const phone = await ctx.newPage("phone", { width: 390, height: 844 });
  await ctx.signIn(phone, ctx.owner.email, ctx.owner.password);
  for (const path of PAGES) {
    await ctx.visit(path, `phone-${path.replace(/^\/console\/?/, "") || "overview"}`, phone);
    const width = await phone.evaluate(() => document.documentElement.scrollWidth);
    check(width <= 390, `${path} is ${width} px wide at a 390 px viewport (sideways scrolling)`);
  }
}
