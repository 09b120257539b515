// assetline console: keyboard shortcuts, bulk select, live updates (Server-Sent Events).
// No inline script anywhere (the CSP forbids it); everything the pages do in the browser is here.
(function () {
  "use strict";
  const body = document.body;
  const csrf = body.dataset.csrf;
  const page = body.dataset.page;

  // Swatches: colours are set through the CSSOM (allowed by the CSP), checked as #rrggbb first.
  document.querySelectorAll(".sw[data-color]").forEach(function (el) {
    if (/^#[0-9a-f]{6}$/i.test(el.dataset.color)) el.style.backgroundColor = el.dataset.color;
  });

  function typing(ev) {
    const t = ev.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }

  async function decide(ids, action, note, started) {
    const form = new URLSearchParams();
    ids.forEach(function (id) { form.append("id", id); });
    form.append("action", action);
    if (note) form.append("note", note);
    const res = await fetch("/review/decide", {
      method: "POST",
      headers: { "X-CSRF-Token": csrf, "Accept": "application/json" },
      body: form,
      credentials: "same-origin",
    });
    const out = res.headers.get("Content-Type", "").indexOf("json") >= 0 ? await res.json() : { decided: [], refused: { "": await res.text() } };
    (out.decided || []).forEach(removeCard);
    window.__lastDecisionMs = performance.now() - started;
    window.__decisions = (window.__decisions || 0) + (out.decided || []).length;
    const refused = Object.values(out.refused || {});
    if (refused.length) say(refused.join("; "));
    return out;
  }

  function say(text) {
    const live = document.getElementById("live");
    if (live) live.textContent = text;
  }

  // --- the queue ----------------------------------------------------------------------------
  const grid = document.getElementById("grid");
  let cur = 0;

  function cards() { return Array.from(document.querySelectorAll("#grid .card")); }

  function focusCard(i) {
    const all = cards();
    if (!all.length) return;
    cur = Math.max(0, Math.min(i, all.length - 1));
    all.forEach(function (c, n) { c.classList.toggle("cur", n === cur); });
    all[cur].focus({ preventScroll: true });
    all[cur].scrollIntoView({ block: "nearest" });
  }

  function removeCard(id) {
    const el = document.querySelector('#grid .card[data-id="' + CSS.escape(id) + '"]');
    if (!el) return;
    const wasCur = cards().indexOf(el) === cur;
    el.remove();
    const total = document.getElementById("total");
    if (total) total.textContent = String(Math.max(0, parseInt(total.textContent, 10) - 1));
    updateSelected();
    if (wasCur) focusCard(cur);
  }

  function selectedIds() {
    return Array.from(document.querySelectorAll("#grid .sel:checked")).map(function (c) { return c.value; });
  }

  function updateSelected() {
    const s = document.getElementById("selected");
    if (s) s.textContent = selectedIds().length + " selected";
  }

  function askReason(what) {
    return new Promise(function (resolve) {
      const dlg = document.getElementById("reject-dialog");
      const input = document.getElementById("reject-note");
      document.getElementById("reject-what").textContent = what;
      input.value = "";
      dlg.addEventListener("close", function done() {
        dlg.removeEventListener("close", done);
        resolve(dlg.returnValue === "ok" && input.value.trim() ? input.value.trim() : null);
      });
      dlg.showModal();
      input.focus();
    });
  }

  if (page === "queue" && grid) {
    focusCard(0);
    grid.addEventListener("change", updateSelected);
    const all = document.getElementById("all");
    all.addEventListener("change", function () {
      document.querySelectorAll("#grid .sel").forEach(function (c) { c.checked = all.checked; });
      updateSelected();
    });
    document.getElementById("bulk").addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const action = ev.submitter ? ev.submitter.value : "approve";
      const ids = selectedIds();
      if (!ids.length) { say("Select items first (x, or the boxes)."); return; }
      const note = document.getElementById("bulk-note").value.trim();
      if (action === "reject" && !note) { say("A reason is required to reject."); return; }
      await decide(ids, action, note, performance.now());
      document.getElementById("all").checked = false;
      say(ids.length + " " + (action === "approve" ? "approved" : "rejected"));
    });
    document.addEventListener("keydown", async function (ev) {
      if (typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const all = cards();
      const el = all[cur];
      if (ev.key === "j") { focusCard(cur + 1); ev.preventDefault(); }
      else if (ev.key === "k") { focusCard(cur - 1); ev.preventDefault(); }
      else if (ev.key === "x" && el) { const c = el.querySelector(".sel"); c.checked = !c.checked; updateSelected(); }
      else if (ev.key === "Enter" && el) { window.location = el.querySelector("a.open").href; }
      else if (ev.key === "a" && el) { ev.preventDefault(); await decide([el.dataset.id], "approve", "", ev.timeStamp); }
      else if (ev.key === "r" && el) {
        ev.preventDefault();
        const note = await askReason(el.dataset.id);
        if (note) await decide([el.dataset.id], "reject", note, performance.now());
      }
    });
  }

  // --- one item ------------------------------------------------------------------------------
  if (page === "detail") {
    document.addEventListener("keydown", function (ev) {
      if (typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const go = function (id) { const a = document.getElementById(id); if (a) window.location = a.href; };
      if (ev.key === "j") go("next-item");
      else if (ev.key === "k") go("prev-item");
      else if (ev.key === "a" && document.getElementById("approve")) document.getElementById("approve").click();
      else if (ev.key === "r" && document.getElementById("note")) { ev.preventDefault(); document.getElementById("note").focus(); }
    });
    const form = document.getElementById("decide");
    if (form) form.addEventListener("submit", function (ev) {
      if (ev.submitter && ev.submitter.value === "reject" && !document.getElementById("note").value.trim()) {
        ev.preventDefault();
        document.getElementById("note").focus();
        document.getElementById("note").placeholder = "a reason is required to reject";
      }
    });
  }

  // Enter in a reason field means "reject with this reason", never the form's first button
  // (which approves).
  [["note", "reject"], ["bulk-note", "bulk-reject"]].forEach(function (pair) {
    const input = document.getElementById(pair[0]);
    if (input) input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { ev.preventDefault(); document.getElementById(pair[1]).click(); }
    });
  });

  // --- live updates --------------------------------------------------------------------------
  if ((page === "queue" || page === "detail") && window.EventSource) {
    const source = new EventSource("/review/events");
    source.addEventListener("decided", function (ev) {
      const change = JSON.parse(ev.data);
      removeCard(change.request_id);
      if (page === "detail" && document.getElementById("decide") && document.getElementById("decide").dataset.id === change.request_id) {
        say(change.request_id + " was decided (" + change.status + (change.reviewer ? " by " + change.reviewer : "") + ")");
      }
    });
    source.addEventListener("added", async function (ev) {
      if (!grid) return;
      const change = JSON.parse(ev.data);
      if (document.querySelector('#grid .card[data-id="' + CSS.escape(change.request_id) + '"]')) return;
      const q = grid.dataset.filter ? "?" + grid.dataset.filter : "";
      const res = await fetch("/review/card/" + encodeURIComponent(change.request_id) + q, { credentials: "same-origin" });
      if (res.status !== 200) return;
      grid.insertAdjacentHTML("beforeend", await res.text());
      const total = document.getElementById("total");
      if (total) total.textContent = String(parseInt(total.textContent, 10) + 1);
      const empty = document.getElementById("empty");
      if (empty) empty.remove();
      if (cards().length === 1) focusCard(0);
    });
    window.addEventListener("beforeunload", function () { source.close(); });
  }
})();
