// Gateway approval from the console (bootstrapped server with a `keyward gateway`, see
// tests/e2e/console_browser.rs): a member's POST that the route's `@approval("required")` permit
// holds shows on /console/approvals with its X-Keyward-Approval-Reason, is approved on its page
// and then reaches the upstream (the caller gets its 200); the recorded session then opens in
// the replay view with the AWS-key-shaped value of the upstream's answer masked.

export const server = "bootstrapped";

/// Shaped like an AWS access key id: the recording must mask it.
const KEY_ID = "AKIAIOSFODNN7EXAMPLE";
const REASON = "ship the hotfix for incident 7 from the browser";
const SESSION = "console-browser-7";

/// Reloads `pathname` until `selector` is on it (the gateway and the recorder are asynchronous).
async function until(ctx, pathname, selector, what, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const res = await ctx.page.goto(`${ctx.baseUrl}${pathname}`);
    ctx.check(res.status() === 200, `${pathname} answered ${res.status()}`);
    if ((await ctx.page.locator(selector).count()) > 0) {
      return;
    }
    ctx.check(Date.now() < deadline, `${what} never showed on ${pathname}: ${await ctx.page.locator("main").innerText()}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

export async function run(ctx) {
  const { page, check } = ctx;
  check(ctx.gatewayUrl && ctx.gatewayToken, "KEYWARD_GATEWAY_URL and KEYWARD_GATEWAY_TOKEN are not set");
  ctx.shared.secrets.push(ctx.gatewayToken);

  // The member's request, held by the gateway until someone decides.
  let settled = null;
  const held = fetch(`${ctx.gatewayUrl}/tools/run`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${ctx.gatewayToken}`,
      "content-type": "application/json",
      "x-keyward-approval-reason": REASON,
      "x-keyward-session": SESSION,
    },
    body: JSON.stringify({ tool: "deploy", key: KEY_ID }),
  })
    .then(async (res) => ({ status: res.status, text: await res.text() }))
    .catch((e) => ({ status: 0, text: String(e && e.cause ? e.cause : e) }))
    .then((answer) => {
      settled = answer;
      return answer;
    });

  await until(ctx, "/console/approvals", "a[id^='approval-open-']", "the held request", 15);
  check(settled === null, `the request was answered before any decision: ${JSON.stringify(settled)}`);
  const row = page.locator("#approvals tbody tr", { hasText: REASON });
  check((await row.count()) === 1, `no pending row with the reason: ${await page.locator("main").innerText()}`);
  const rowText = await row.innerText();
  check(rowText.includes("alice@acme.example") && rowText.includes("pending"), `the row reads ${rowText}`);
  await ctx.screenshot("approvals-pending");

  const [opened] = await Promise.all([page.waitForNavigation(), row.locator("a[id^='approval-open-']").click()]);
  check(opened.status() === 200, `the request's page answered ${opened.status()}`);
  check((await page.locator("#approval-reason").innerText()).trim() === REASON, "the page does not show the reason");
  check((await page.locator("#approval-state").innerText()).includes("pending"), "the request is not pending");
  await ctx.screenshot("approval-detail");

  check(settled === null, `the request was answered before the approval: ${JSON.stringify(settled)}`);
  const approved = await ctx.submit("#approval-approve", {
    "#approval-grant": "once",
    "#approval-approve-comment": "go ahead (browser)",
  }, "#approval-approve-submit");
  check(approved.status() === 200, `approving answered ${approved.status()}: ${await page.locator("main").innerText()}`);
  // Approved, or already executed when the released request reached the upstream first.
  const state = (await page.locator("#approval-state").innerText()).trim();
  check(["approved", "executed"].includes(state), `the state reads ${state}`);
  check((await page.locator("#approval-decided-by").innerText()).includes(ctx.owner.email), "the page does not name who approved");
  check((await page.locator("#approval-comment").innerText()).includes("go ahead (browser)"), "the comment is not shown");
  await ctx.screenshot("approval-approved");

  // Released: the caller gets the upstream's answer (the route itself does not mask).
  const answer = await Promise.race([held, new Promise((r) => setTimeout(() => r(null), 10000))]);
  check(answer, "the approved request was not released within 10 s");
  check(answer.status === 200, `the released request answered ${answer.status}: ${answer.text}`);
  check(answer.text.includes(KEY_ID), `the upstream's answer did not come back: ${answer.text}`);
  ctx.shared.secrets.push(KEY_ID);

  // The recording, found by route on the sessions page, opens in the replay view once verified.
  const deadline = Date.now() + 20000;
  let replay;
  for (;;) {
    await until(ctx, "/console/sessions?route=tools", `#session-open-${SESSION}`, "the recorded session", 20);
    [replay] = await Promise.all([page.waitForNavigation(), page.locator(`#session-open-${SESSION}`).click()]);
    check(replay.status() === 200, `the replay view answered ${replay.status()}`);
    if ((await page.locator("#session-verify").innerText()).includes("Verified:")) {
      break;
    }
    check(Date.now() < deadline, `the recording never verified: ${await page.locator("#session-verify").innerText()}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  const shown = await page.locator("#replay").innerText();
  check(shown.includes("POST /tools/run"), `the replay does not show the request: ${shown}`);
  check((await page.locator("#replay li.rec-response").count()) > 0, `the replay shows no response: ${shown}`);
  check(shown.includes("[MASKED:aws_access_key_id]"), `the replay shows no masked marker: ${shown}`);
  const raw = await replay.text();
  const html = await page.content();
  for (const secret of [KEY_ID, ctx.gatewayToken]) {
    check(!raw.includes(secret) && !html.includes(secret), `the replay view shows ${secret === KEY_ID ? "the key id" : "the caller's token"} in clear`);
  }
  await ctx.screenshot("session-replay");
}
