// Every console page reachable from the navigation, opened as the Owner after the other
// bootstrapped-server flows (this one sorts last): none may show a secret value those flows
// created (provider keys, cloud secret values, env var values, tokens, the masked key id), in
// the HTML as served or as the page's script left it.

export const server = "bootstrapped";

/// Links the crawl does not follow: none change anything, these only leave the console.
const SKIP = [/^\/console\/secret-providers\/[^/]+\/secrets/];
const LIMIT = 200;

export async function run(ctx) {
  const { page, check } = ctx;
  const secrets = [...new Set(ctx.shared.secrets.filter((s) => s && s.length >= 8))];
  // The owner's token and password, then what cloudsim-secrets and gateway-approval add.
  check(secrets.length >= 8, `only ${secrets.length} secrets to look for: run with the flows that create them`);

  await ctx.visit("/console", "overview");
  const nav = await page.locator("nav.main a").evaluateAll((as) => as.map((a) => a.getAttribute("href")));
  check(nav.length >= 8, `the navigation has ${nav.length} links: ${nav}`);
  const queue = [{ href: "/console", depth: 0 }, ...nav.map((href) => ({ href, depth: 0 }))];
  const seen = new Set();
  const problems = [];
  while (queue.length) {
    const { href, depth } = queue.shift();
    if (seen.has(href)) {
      continue;
    }
    seen.add(href);
    check(seen.size <= LIMIT, `more than ${LIMIT} console pages: ${[...seen].join(" ")}`);
    const res = await page.goto(`${ctx.baseUrl}${href}`);
    if (res.status() !== 200) {
      problems.push(`${href} answered ${res.status()}`);
      continue;
    }
    const raw = await res.text();
    const html = await page.content();
    for (const secret of secrets) {
      if (raw.includes(secret) || html.includes(secret)) {
        problems.push(`${href} shows a secret value (${secret.slice(0, 4)}…)`);
      }
    }
    if (depth === 0 && nav.includes(href)) {
      await ctx.screenshot(`crawl-${href.replace(/^\/console\/?/, "") || "overview"}`);
    }
    // Pages linked from a navigation page, and one step further (a session's replay, an edit page).
    if (depth < 2) {
      const links = await page.locator("a[href^='/console']").evaluateAll((as) => as.map((a) => a.getAttribute("href")));
      for (const link of links) {
        const clean = link.split("#")[0];
        if (!seen.has(clean) && !SKIP.some((re) => re.test(clean))) {
          queue.push({ href: clean, depth: depth + 1 });
        }
      }
    }
  }
  check(problems.length === 0, `the crawl found:\n  ${problems.join("\n  ")}`);
  for (const must of ["/console/secret-providers", "/console/environment-variables", "/console/approvals", "/console/sessions", `/console/sessions/console-browser-7`]) {
    check(seen.has(must), `the crawl never reached ${must}: ${[...seen].join(" ")}`);
  }
  console.log(`     crawl: ${seen.size} pages, ${secrets.length} secret values looked for`);
}
