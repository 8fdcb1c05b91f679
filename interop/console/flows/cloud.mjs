// Cloud settings pages in the browser: a GCP workload identity config and a Vertex LLM connection
// authenticated by it, created through their forms (the page's script shows only the chosen
// cloud's fields); the `google/` model rule's refusal is shown on the page; the API agrees.

const PROVIDER =
  "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/keyward-pool/providers/keyward-provider";

export async function run(ctx) {
  const { page, check } = ctx;

  await ctx.visit("/console/workload-identity", "workload-identity");
  const wi = await ctx.submit("#wi-create", { "#wi-name": "gcp-browser", "#wi-cloud": "gcp", "#wi-provider": PROVIDER }, "#wi-submit");
  check(wi.status() === 200, `creating the config answered ${wi.status()}: ${await page.locator("main").innerText()}`);
  check(await page.locator("#wi-row-gcp-browser").isVisible(), "the new config is not listed");
  await ctx.screenshot("workload-identity-created");
  const config = await ctx.api("GET", "/api/v1/workload-identity-configs");
  check(JSON.stringify(config.body).includes("gcp-browser"), `the API lists no gcp-browser: ${JSON.stringify(config.body)}`);

  await ctx.visit("/console/llm-connections", "llm-connections");
  const fields = {
    "#llm-name": "vertex-browser",
    "#llm-provider": "vertex",
    "#llm-auth": "workload_identity",
    "#llm-wi-config": "gcp-browser",
    "#llm-sa-email": "crew-runner@keyward-demo.iam.gserviceaccount.com",
    "#llm-model": "vertex_ai/gemini-2.0-flash",
  };
  const refused = await ctx.expectRefusal(() => ctx.submit("#llm-create", fields, "#llm-submit"));
  check(refused.status() === 400, `a model without google/ answered ${refused.status()}`);
  check((await page.locator("main").innerText()).includes("google/"), "the refusal does not name the google/ rule");
  await ctx.screenshot("llm-google-rule");
  const made = await ctx.submit("#llm-create", { ...fields, "#llm-model": "google/gemini-2.0-flash" }, "#llm-submit");
  check(made.status() === 200, `creating the connection answered ${made.status()}: ${await page.locator("main").innerText()}`);
  const conn = await ctx.api("GET", "/api/v1/llm-connections/vertex-browser");
  check(conn.status === 200, `GET the connection answered ${conn.status}`);
  check(JSON.stringify(conn.body).includes("gcp-browser"), `the connection does not name its config: ${JSON.stringify(conn.body)}`);
}
