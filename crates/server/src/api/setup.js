const params = new URLSearchParams(location.hash.slice(1));
const setupToken = params.get("token");
if (!setupToken) {
  document.getElementById("error").textContent = "This page needs the setup link printed by `keyward serve`.";
}
document.getElementById("setup").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const res = await fetch("/api/v1/setup", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      setup_token: setupToken || "",
      org_name: document.getElementById("org").value,
      email: document.getElementById("email").value,
    }),
  });
  const body = await res.json();
  if (!res.ok) {
    document.getElementById("error").textContent = body.message || "Setup failed.";
    return;
  }
  history.replaceState(null, "", "/setup");
  document.getElementById("setup").hidden = true;
  document.getElementById("error").textContent = "";
  document.getElementById("org-id").textContent = body.org.uuid;
  document.getElementById("token").textContent = body.token.token;
  document.getElementById("done").hidden = false;
});
