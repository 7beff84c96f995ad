/**
 * The dashboard: one HTML page, one script, one stylesheet, served by the
 * gateway as strings (no build step, no external assets). The script polls
 * /api/status every second and renders with textContent only: nicknames and
 * messages come from the network and are never parsed as HTML.
 */

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shoal dashboard</title>
<link rel="stylesheet" href="/dashboard.css">
<script src="/dashboard.js" defer></script>
</head>
<body>
<header>
  <h1>Shoal <span id="node-nickname"></span></h1>
  <p id="files-link"><a href="/browser">Browse files</a></p>
  <p id="banner" class="banner" hidden></p>
  <p id="health" class="health checking" role="status">checking…</p>
  <p class="small">updated <span id="updated">never</span></p>
</header>
<main>
<section id="problems-section" hidden>
  <h2>Problems</h2>
  <ul id="problems"></ul>
</section>
<section>
  <h2>Grid service directory</h2>
  <table id="gsd"><tbody>
    <tr><th>version</th><td id="gsd-seqnum">-</td></tr>
    <tr><th>issued</th><td id="gsd-issued">-</td></tr>
    <tr><th>expires</th><td id="gsd-expires">-</td></tr>
    <tr><th>freshness</th><td id="gsd-freshness">-</td></tr>
    <tr><th>newest copy held by</th><td id="gsd-holders">-</td></tr>
    <tr><th>lacking the newest copy</th><td id="gsd-lacking">-</td></tr>
    <tr><th>last refresh</th><td id="refreshed-at">-</td></tr>
  </tbody></table>
</section>
<section>
  <h2>Storage servers (<span id="server-count">0</span>)</h2>
  <div class="table-wrap"><table id="servers">
    <thead><tr><th>nickname</th><th>petname</th><th>server id</th><th>location hints</th>
      <th>reachable</th><th>last contact</th><th>space used</th><th>space available</th><th>software</th>
      <th>GSA version</th><th>GSD version held</th></tr></thead>
    <tbody></tbody>
  </table></div>
</section>
<section id="upload-section">
  <h2>Upload a file</h2>
  <form id="upload-form">
    <input type="file" id="upload-file" required>
    <select id="upload-format"><option value="immutable">immutable</option><option value="mutable">mutable</option></select>
    <button type="submit" id="upload-button">Upload</button>
  </form>
  <p id="upload-status" class="small"></p>
  <p id="upload-result" hidden>cap: <code id="upload-cap"></code> <a id="upload-link" href="#">download</a></p>
</section>
<section id="shares-section">
  <h2>Where are the shares of a cap?</h2>
  <form id="shares-form">
    <input type="password" id="shares-cap" placeholder="shoal:..." autocomplete="off" size="60" required>
    <button type="submit">Look up</button>
  </form>
  <p id="shares-status" class="small"></p>
  <table id="shares"><thead><tr><th>server</th><th>server id</th><th>shares</th></tr></thead><tbody></tbody></table>
</section>
<section id="upkeep-section">
  <h2>Upkeep: leases and repair</h2>
  <p id="upkeep-summary" class="small"></p>
  <table id="upkeep-failures"><thead><tr><th>object</th><th>server</th><th>lease renewal failed</th><th>when</th></tr></thead><tbody></tbody></table>
  <table id="upkeep-log"><thead><tr><th>time</th><th>decision</th></tr></thead><tbody></tbody></table>
</section>
<section>
  <h2>Refresh history</h2>
  <table id="history">
    <thead><tr><th>time</th><th>outcome</th><th>servers</th><th>GSD</th><th>changes</th></tr></thead>
    <tbody></tbody>
  </table>
</section>
</main>
</body>
</html>
`;

export const DASHBOARD_CSS = `
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { margin: 0 0 .2em; font-size: 1.5em; }
h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; font-size: .92em; }
thead th { background: #eef; }
code, .id { font-family: ui-monospace, monospace; font-size: .9em; word-break: break-all; }
.small { color: #666; font-size: .85em; margin: .2em 0; }
.banner { background: #fee; border: 1px solid #c66; padding: .5em; }
.up { color: #060; font-weight: bold; }
.down { color: #b00; font-weight: bold; }
.unknown { color: #888; }
.warn { color: #b60; font-weight: bold; }
.health { padding: .5em .7em; border-radius: 4px; font-weight: bold; margin: .4em 0; }
.health.ok { background: #e6f4e6; border: 1px solid #6a6; color: #040; }
.health.warning { background: #fff4dc; border: 1px solid #d90; color: #640; }
.health.error { background: #fde8e8; border: 1px solid #c44; color: #800; }
.health.checking { background: #eef; border: 1px solid #99c; color: #335; }
#problems { padding-left: 1.2em; margin: .3em 0; }
#problems li { margin: .3em 0; }
#problems li.error .text { color: #800; font-weight: bold; }
#problems li.warning .text { color: #640; font-weight: bold; }
#problems .fix { display: block; color: #333; }
#problems .fix::before { content: "fix: "; color: #666; }
.table-wrap { overflow-x: auto; max-width: 100%; }
@media (max-width: 600px) {
  body { margin: .6em; }
  th, td { padding: .2em .35em; font-size: .85em; }
  table { display: block; overflow-x: auto; max-width: 100%; }
  input, select { max-width: 100%; box-sizing: border-box; }
  #shares-cap { width: 100%; }
}
`;

export const DASHBOARD_JS = `"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const iso = (t) => (t === null || t === undefined) ? "-" : new Date(t * 1000).toISOString().replace(".000Z", "Z");
  const ago = (now, t) => (t === null || t === undefined) ? "never" : (now - t) + " s ago";
  const cell = (tr, text, cls) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  };
  const banner = (text) => {
    const b = $("banner");
    b.textContent = text || "";
    b.hidden = !text;
  };
  let nameById = new Map();
  const bytes = (n) => {
    if (n === null || n === undefined) return "-";
    const u = ["bytes", "KB", "MB", "GB", "TB", "PB"];
    let i = 0, v = n;
    while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
    return i === 0 ? n + " bytes" : v.toFixed(v < 10 ? 1 : 0) + " " + u[i];
  };

  function renderHealth(h) {
    const el = $("health");
    el.textContent = h.banner;
    el.className = "health " + h.level;
    el.dataset.level = h.level;
    const list = $("problems");
    list.replaceChildren();
    for (const p of h.problems) {
      const li = document.createElement("li");
      li.className = p.level;
      if (p.serverId) li.dataset.serverId = p.serverId;
      const t = document.createElement("span");
      t.className = "text";
      t.textContent = p.text;
      const f = document.createElement("span");
      f.className = "fix";
      f.textContent = p.fix;
      li.append(t, f);
      list.appendChild(li);
    }
    $("problems-section").hidden = h.problems.length === 0;
  }

  function render(s) {
    const operator = s.role === "operator";
    $("upload-section").hidden = operator;
    $("shares-section").hidden = operator;
    $("files-link").hidden = operator;
    document.title = operator ? "Shoal operator dashboard" : "Shoal dashboard";
    $("node-nickname").textContent = operator ? "— operator" : s.nickname ? "— " + s.nickname : "";
    $("updated").textContent = iso(s.now);
    if (s.health) renderHealth(s.health);
    $("refreshed-at").textContent = iso(s.refreshedAt);
    nameById = new Map(s.servers.map((x) => [x.serverId, x.nickname || x.petname]));
    const names = (ids) => ids.length ? ids.map((i) => nameById.get(i) || i.slice(0, 8)).join(", ") : "none";
    if (s.gsd) {
      $("gsd-seqnum").textContent = String(s.gsd.seqnum);
      $("gsd-issued").textContent = iso(s.gsd.issued);
      $("gsd-expires").textContent = iso(s.gsd.expires);
      $("gsd-freshness").textContent = s.gsd.freshness;
      $("gsd-freshness").className = s.gsd.freshness === "fresh" ? "" : "warn";
      $("gsd-holders").textContent = names(s.gsd.holders);
      $("gsd-lacking").textContent = names(s.gsd.lacking);
    } else {
      $("gsd-seqnum").textContent = "not read yet";
    }
    $("server-count").textContent = String(s.servers.length);
    const body = document.querySelector("#servers tbody");
    body.replaceChildren();
    for (const x of s.servers) {
      const tr = document.createElement("tr");
      tr.dataset.nickname = x.nickname;
      tr.dataset.serverId = x.serverId;
      cell(tr, x.nickname, "nickname");
      cell(tr, x.petname);
      cell(tr, x.serverId.slice(0, 16), "id").title = x.serverId;
      cell(tr, x.locations.join(", "));
      const r = x.reachable === null ? ["unknown", "unknown"] : x.reachable ? ["up", "up"] : ["down", "down"];
      const rc = cell(tr, r[0], "reachable " + r[1]);
      if (x.error) rc.title = x.error;
      cell(tr, ago(s.now, x.lastContact));
      cell(tr, bytes(x.used), "used");
      cell(tr, bytes(x.availableSpace), "space");
      cell(tr, x.software || "-", "software");
      cell(tr, String(x.gsaSeqnum));
      cell(tr, x.gsdSeqnum === null ? "-" : String(x.gsdSeqnum) + (x.hasNewestGsd === false ? " (stale)" : ""),
        x.hasNewestGsd === false ? "warn" : "");
      body.appendChild(tr);
    }
    // GSD entries whose announcement is not held yet (textContent only: never markup).
    for (const m of s.missing || []) {
      const tr = document.createElement("tr");
      tr.className = "missing";
      tr.dataset.petname = m.petname;
      cell(tr, "(missing)", "nickname warn");
      cell(tr, m.petname);
      cell(tr, (m.serverId || "?").slice(0, 16), "id");
      cell(tr, "announcement not read yet: " + m.problem, "warn");
      cell(tr, "-");
      cell(tr, "since " + iso(m.since));
      cell(tr, "-");
      cell(tr, "-");
      cell(tr, "-");
      cell(tr, "-");
      cell(tr, m.attempts + " attempt(s)");
      body.appendChild(tr);
    }
    renderUpkeep(s);
    const hist = document.querySelector("#history tbody");
    hist.replaceChildren();
    for (const h of s.history) {
      const tr = document.createElement("tr");
      cell(tr, iso(h.time) + (h.count > 1 ? " … " + iso(h.last) + " (" + h.count + "×)" : ""));
      cell(tr, h.ok ? (h.full ? "full read" : "unchanged") : "failed: " + h.error, h.ok ? "" : "down");
      cell(tr, String(h.servers));
      cell(tr, h.gsdSeqnum === null ? "-" : String(h.gsdSeqnum));
      const ch = [];
      if (h.added.length) ch.push("added " + h.added.join(", "));
      if (h.removed.length) ch.push("removed " + h.removed.join(", "));
      if (h.updated.length) ch.push("changed " + h.updated.join(", "));
      for (const p of h.problems) ch.push("problem: " + p);
      cell(tr, ch.join("; "));
      hist.appendChild(tr);
    }
  }

  function renderUpkeep(s) {
    const u = s.upkeep;
    $("upkeep-section").hidden = !u;
    if (!u) return;
    const parts = [];
    if (!u.enabled) parts.push("disabled: leases are not renewed and nothing is repaired");
    if (u.objects !== null) parts.push(u.objects + " object(s) held");
    if (u.lastRenewal) {
      parts.push("leases renewed " + iso(u.lastRenewal.at) + ": " + u.lastRenewal.renewed + " renewed, " +
        u.lastRenewal.failed + " failed");
    }
    if (u.nextRenewal) parts.push("next renewal " + iso(u.nextRenewal));
    if (u.lastCheck) {
      parts.push("checked " + iso(u.lastCheck.at) + ": " + u.lastCheck.healthy + " healthy, " +
        u.lastCheck.repaired + " repaired, " + u.lastCheck.unhealthy + " not healthy, " +
        u.lastCheck.unrecoverable + " unrecoverable");
    }
    $("upkeep-summary").textContent = parts.join(" · ") || "starting";
    const fb = document.querySelector("#upkeep-failures tbody");
    fb.replaceChildren();
    for (const f of u.failures) {
      const tr = document.createElement("tr");
      cell(tr, f.path);
      cell(tr, f.server);
      cell(tr, f.error, "down");
      cell(tr, iso(f.at));
      fb.appendChild(tr);
    }
    $("upkeep-failures").hidden = u.failures.length === 0;
    const lb = document.querySelector("#upkeep-log tbody");
    lb.replaceChildren();
    for (const l of u.log.slice().reverse().slice(0, 20)) {
      const tr = document.createElement("tr");
      cell(tr, iso(l.at));
      cell(tr, l.line);
      lb.appendChild(tr);
    }
  }

  async function poll() {
    try {
      const r = await fetch("/api/status", { credentials: "same-origin", cache: "no-store" });
      if (r.status === 401 || r.status === 403) {
        banner("Not authorized: open this dashboard through the URL that 'shoal client run' printed (it ends in ?token=...).");
        renderHealth({ level: "error", banner: "status unknown: not authorized", problems: [] });
      } else if (!r.ok) {
        banner("The gateway answered " + r.status + ": " + (await r.text()));
      } else {
        banner("");
        render(await r.json());
      }
    } catch (e) {
      banner("The gateway is not answering (" + e.message + "). Is 'shoal client run' still running?");
      renderHealth({ level: "error", banner: "status unknown: the gateway is not answering", problems: [] });
    }
    setTimeout(poll, 1000);
  }

  $("upload-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = $("upload-file").files[0];
    if (!f) return;
    $("upload-result").hidden = true;
    $("upload-status").textContent = "uploading " + f.name + " (" + f.size + " bytes)…";
    try {
      const r = await fetch("/uri?format=" + encodeURIComponent($("upload-format").value), {
        method: "PUT", body: f, credentials: "same-origin",
      });
      const text = (await r.text()).trim();
      if (!r.ok) throw new Error(r.status + ": " + text);
      $("upload-cap").textContent = text;
      $("upload-link").href = "/uri/" + encodeURIComponent(text) + "?filename=" + encodeURIComponent(f.name);
      $("upload-link").textContent = "download " + f.name;
      $("upload-result").hidden = false;
      $("upload-status").textContent = "uploaded " + f.name;
    } catch (e) {
      $("upload-status").textContent = "upload failed: " + e.message;
    }
  });

  $("shares-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = document.querySelector("#shares tbody");
    body.replaceChildren();
    $("shares-status").textContent = "asking every server…";
    try {
      const r = await fetch("/api/shares", {
        method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ cap: $("shares-cap").value.trim() }),
      });
      if (!r.ok) throw new Error(r.status + ": " + (await r.text()));
      const s = await r.json();
      $("shares-status").textContent = s.kind + ": " + s.distinctShares + " distinct share(s) found";
      for (const x of s.servers) {
        const tr = document.createElement("tr");
        tr.dataset.serverId = x.serverId;
        cell(tr, x.nickname || "-");
        cell(tr, x.serverId.slice(0, 16), "id").title = x.serverId;
        cell(tr, x.error ? "unreachable: " + x.error : x.shares.length ? x.shares.join(", ") : "none", x.error ? "down" : "shares");
        body.appendChild(tr);
      }
    } catch (e) {
      $("shares-status").textContent = "lookup failed: " + e.message;
    }
  });

  poll();
})();
`;
