/**
 * The file browser: one HTML page, one script, one stylesheet, served by the
 * gateway at /browser (no build step, no external assets). It uses only the
 * gateway's file API (/alias, /uri) and /api/aliases, with the token cookie the
 * dashboard set; every change is a PUT, POST or DELETE, so the gateway's
 * cross-site rules apply. Names and caps come from the grid and are rendered
 * with textContent only, never as markup. Caps stay in the page's memory: never
 * in the address bar (the hash holds only an alias path).
 */

export const BROWSER_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shoal files</title>
<link rel="stylesheet" href="/dashboard.css">
<link rel="stylesheet" href="/browser.css">
<script src="/browser.js" defer></script>
</head>
<body>
<header>
  <h1>Shoal files <a class="small" href="/">dashboard</a></h1>
  <p id="banner" class="banner" hidden></p>
</header>
<main>
<nav id="crumbs" aria-label="path"></nav>
<p id="ro-mark" class="warn" hidden>read-only: this directory was opened with a readcap</p>
<div id="actions">
  <form id="mkdir-form"><input id="mkdir-name" placeholder="new folder name" required><button type="submit" id="mkdir-button">New folder</button></form>
  <form id="upload-form"><input type="file" id="upload-file" multiple><button type="submit" id="upload-button">Upload</button></form>
</div>
<div id="drop" class="drop">drop files here to upload them into this directory</div>
<div id="progress-wrap" hidden><progress id="progress" max="100" value="0"></progress> <span id="progress-text"></span></div>
<p id="status" class="small" role="status"></p>
<div class="table-wrap"><table id="entries">
  <thead><tr><th>name</th><th>kind</th><th>size</th><th>modified</th><th>actions</th></tr></thead>
  <tbody></tbody>
</table></div>
<section id="share-section" hidden>
  <h2>Share <span id="share-name"></span></h2>
  <p class="small">The read-only cap: whoever holds it can read this and nothing else.</p>
  <input id="share-cap" readonly>
  <button type="button" id="share-copy">Copy</button>
  <button type="button" id="share-close">Close</button>
</section>
<section>
  <h2>Open a cap</h2>
  <form id="open-form">
    <input type="password" id="open-cap" placeholder="shoal:..." autocomplete="off" required>
    <button type="submit">Open</button>
  </form>
</section>
</main>
</body>
</html>
`;

export const BROWSER_CSS = `
[hidden] { display: none !important; }
#crumbs { margin: .6em 0; word-break: break-all; }
#crumbs a, #crumbs span { margin-right: .2em; }
#actions { display: flex; flex-wrap: wrap; gap: .6em; margin: .5em 0; }
#actions form { display: flex; flex-wrap: wrap; gap: .3em; max-width: 100%; }
.drop { border: 2px dashed #99c; padding: .8em; text-align: center; color: #557; margin: .5em 0; }
.drop.over { background: #eef; }
#progress { width: 14em; max-width: 60%; }
#entries { width: 100%; }
#entries td.name { word-break: break-all; }
#entries td.acts button { margin: .1em; }
.ro { color: #b60; font-size: .8em; margin-left: .3em; }
#share-cap, #open-cap { width: 32em; max-width: 100%; box-sizing: border-box; font-family: ui-monospace, monospace; }
@media (max-width: 600px) {
  #entries th:nth-child(4), #entries td:nth-child(4) { display: none; }
  #entries { display: table; }
}
`;

export const BROWSER_JS = `"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  };
  const bytes = (n) => {
    if (n === null || n === undefined) return "-";
    const u = ["bytes", "KB", "MB", "GB", "TB"];
    let i = 0, v = n;
    while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
    return i === 0 ? n + " bytes" : v.toFixed(v < 10 ? 1 : 0) + " " + u[i];
  };
  const when = (t) => t ? new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") : "-";
  const status = (t) => { $("status").textContent = t; };
  const banner = (t) => { $("banner").textContent = t || ""; $("banner").hidden = !t; };

  // Where we are: an alias or a cap (kept in memory only), and names below it.
  let root = null; // { alias: NAME } | { cap: CAP }
  let path = [];
  let writable = false;

  const rootUrl = (r) => r.alias !== undefined ? "/alias/" + encodeURIComponent(r.alias) : "/uri/" + encodeURIComponent(r.cap);
  const urlOf = (names) => rootUrl(root) + names.map((n) => "/" + encodeURIComponent(n)).join("");
  const req = (method, url, body) => fetch(url, { method, body, credentials: "same-origin", cache: "no-store" })
    .then(async (r) => {
      if (!r.ok) throw new Error(r.status + ": " + (await r.text()).slice(0, 300));
      return r;
    });

  function setHash() {
    // Only alias paths go to the address bar; a cap never does.
    const h = root && root.alias !== undefined ? "#" + [root.alias, ...path].map(encodeURIComponent).join("/") : "#";
    if (location.hash !== h) history.replaceState(null, "", h === "#" ? location.pathname : h);
  }

  function crumbs() {
    const nav = $("crumbs");
    nav.replaceChildren();
    const link = (text, go) => {
      const a = el("a", text);
      a.href = "#";
      a.addEventListener("click", (ev) => { ev.preventDefault(); go(); });
      nav.append(a, el("span", "/"));
    };
    link("aliases", () => showAliases());
    if (!root) return;
    link(root.alias !== undefined ? root.alias : "(cap)", () => open(root, []));
    path.forEach((n, i) => link(n, () => open(root, path.slice(0, i + 1))));
  }

  async function showAliases() {
    root = null; path = []; writable = false;
    setHash(); crumbs();
    $("actions").hidden = true; $("drop").hidden = true; $("ro-mark").hidden = true;
    const body = document.querySelector("#entries tbody");
    body.replaceChildren();
    try {
      const a = await (await req("GET", "/api/aliases")).json();
      for (const name of a.aliases) {
        const tr = el("tr");
        tr.dataset.name = name;
        const td = el("td", undefined, "name");
        const link = el("a", name);
        link.href = "#";
        link.addEventListener("click", (ev) => { ev.preventDefault(); open({ alias: name }, []); });
        td.append(link);
        tr.append(td, el("td", "alias"), el("td", "-"), el("td", "-"), el("td"));
        body.append(tr);
      }
      status(a.aliases.length ? a.aliases.length + " alias(es)" : "no aliases yet: add one with 'shoal client alias add', or open a cap below");
      banner("");
    } catch (e) {
      banner(/^40[13]/.test(e.message) ? "Not authorized: open the dashboard through the URL 'shoal client run' printed first." : "Could not list aliases: " + e.message);
    }
  }

  async function open(r, names) {
    status("loading…");
    let d;
    try {
      d = await (await req("GET", rootUrl(r) + names.map((n) => "/" + encodeURIComponent(n)).join(""))).json();
    } catch (e) {
      status("could not open: " + e.message);
      return;
    }
    if (d.kind !== "directory") {
      // A file opened by cap: offer the download.
      showFile(d, r);
      return;
    }
    root = r; path = names; writable = !!d.writecap;
    setHash(); crumbs();
    $("actions").hidden = !writable; $("drop").hidden = !writable; $("ro-mark").hidden = writable;
    $("share-section").hidden = true;
    render(d);
    status(d.entries.length + " entr" + (d.entries.length === 1 ? "y" : "ies"));
    banner("");
  }

  function showFile(d, r) {
    const body = document.querySelector("#entries tbody");
    body.replaceChildren();
    const tr = el("tr");
    const a = el("a", "download");
    a.href = rootUrl(r) + "?filename=download";
    const acts = el("td", undefined, "acts");
    acts.append(a);
    tr.append(el("td", "(file by cap)", "name"), el("td", d.kind), el("td", bytes(d.size)), el("td", "-"), acts);
    body.append(tr);
    status("a file");
  }

  function render(d) {
    const body = document.querySelector("#entries tbody");
    body.replaceChildren();
    const dirShare = el("tr", undefined, "self");
    const st = el("td", "(this directory)", "name");
    const sa = el("td", undefined, "acts");
    sa.append(button("share", () => share("this directory", d.readcap)));
    dirShare.append(st, el("td", "directory"), el("td", "-"), el("td", "-"), sa);
    body.append(dirShare);
    for (const e of d.entries) {
      const tr = el("tr");
      tr.dataset.name = e.name;
      tr.dataset.kind = e.kind;
      const name = el("td", undefined, "name");
      const a = el("a", e.name);
      if (e.kind === "directory") {
        a.href = "#";
        a.addEventListener("click", (ev) => { ev.preventDefault(); open(root, [...path, e.name]); });
      } else {
        a.href = urlOf([...path, e.name]) + "?filename=" + encodeURIComponent(e.name);
        a.className = "download";
      }
      name.append(a);
      // Immutable files are never writable; a directory or mutable file without its writecap is.
      if (!e.writecap && e.kind !== "file") name.append(el("span", "read-only", "ro"));
      const acts = el("td", undefined, "acts");
      acts.append(button("share", () => share(e.name, e.readcap)));
      if (writable) {
        acts.append(button("rename", () => rename(e)), button("delete", () => remove(e)));
      }
      const mtime = e.metadata && (e.metadata.mtime || e.metadata.ctime);
      tr.append(name, el("td", e.kind === "mutable-file" ? "mutable file" : e.kind, "kind"),
        el("td", e.kind === "directory" ? "-" : bytes(e.size), "size"), el("td", when(mtime), "date"), acts);
      body.append(tr);
    }
  }

  function button(text, fn) {
    const b = el("button", text, "act-" + text);
    b.type = "button";
    b.addEventListener("click", fn);
    return b;
  }

  const reload = () => open(root, path);

  function share(name, readcap) {
    $("share-name").textContent = name;
    $("share-cap").value = readcap;
    $("share-section").hidden = false;
    $("share-cap").select();
  }
  $("share-copy").addEventListener("click", async () => {
    $("share-cap").select();
    try { await navigator.clipboard.writeText($("share-cap").value); status("copied"); }
    catch { status("select the cap and copy it (the browser refused clipboard access)"); }
  });
  $("share-close").addEventListener("click", () => { $("share-section").hidden = true; $("share-cap").value = ""; });

  async function rename(e) {
    const to = prompt("Rename '" + e.name + "' to:", e.name);
    if (to === null || to === "" || to === e.name) return;
    try {
      // Link the same object under the new name (never replacing), then unlink the old one.
      await req("PUT", urlOf([...path, to]) + "?t=uri&replace=false", e.writecap || e.readcap);
      await req("DELETE", urlOf([...path, e.name]));
      status("renamed " + e.name + " to " + to);
    } catch (err) { status("rename failed: " + err.message); }
    await reload();
  }

  async function remove(e) {
    if (!confirm("Delete '" + e.name + "' from this directory?")) return;
    try {
      await req("DELETE", urlOf([...path, e.name]));
      status("deleted " + e.name);
    } catch (err) { status("delete failed: " + err.message); }
    await reload();
  }

  $("mkdir-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("mkdir-name").value;
    try {
      await req("POST", urlOf([...path, name]) + "?t=mkdir");
      $("mkdir-name").value = "";
      status("made " + name);
    } catch (err) { status("new folder failed: " + err.message); }
    await reload();
  });

  function uploadOne(file) {
    return new Promise((resolve, reject) => {
      const x = new XMLHttpRequest();
      x.open("PUT", urlOf([...path, file.name]));
      x.withCredentials = true;
      x.upload.onprogress = (ev) => {
        if (!ev.lengthComputable) return;
        const p = Math.round(ev.loaded / ev.total * 100);
        $("progress").value = p;
        $("progress").dataset.reported = String(p); // what the browser itself reported
        $("progress-text").textContent = file.name + ": " + p + " %";
      };
      x.onload = () => x.status >= 200 && x.status < 300 ? resolve() : reject(new Error(x.status + ": " + x.responseText.slice(0, 300)));
      x.onerror = () => reject(new Error("network error"));
      x.send(file);
    });
  }

  async function upload(files) {
    if (!root || !writable || !files.length) return;
    $("progress-wrap").hidden = false;
    for (const f of files) {
      $("progress").value = 0;
      $("progress-text").textContent = f.name + ": 0 %";
      status("uploading " + f.name + " (" + bytes(f.size) + ")…");
      try {
        await uploadOne(f);
        $("progress").value = 100;
        $("progress-text").textContent = f.name + ": 100 %";
        status("uploaded " + f.name);
      } catch (err) { status("upload of " + f.name + " failed: " + err.message); break; }
    }
    await reload();
  }

  $("upload-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    upload([...$("upload-file").files]);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    upload([...ev.dataTransfer.files]);
  });

  $("open-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const cap = $("open-cap").value.trim();
    $("open-cap").value = "";
    open({ cap }, []);
  });

  const h = location.hash.slice(1);
  if (h) {
    const parts = h.split("/").map((s) => { try { return decodeURIComponent(s); } catch { return s; } });
    open({ alias: parts[0] }, parts.slice(1)).then(() => { if (!root) showAliases(); });
  } else showAliases();
})();
`;
