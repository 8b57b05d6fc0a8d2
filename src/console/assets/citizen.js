// The citizen page: checks each exchange's receipt in the browser with
// verify.js (inclusion path and Ed25519 signed checkpoint, trusting only
// the verifier key), shows the verdict in the page's language, and offers
// the same receipt as a file; a receipt file the citizen picks is checked
// the same way.
"use strict";
(function () {
  const table = document.getElementById("history");
  const check = window.jisrCheckReceipt;
  if (!check) return;
  const said = (table && table.dataset) || {};
  const words = {
    checking: said.checking || "Checking…",
    verified: said.verified || "Verified",
    notVerified: said.notVerified || "NOT verified",
  };

  // Sets `el`'s verdict on `text` (a receipt's JSON); the reason of a
  // failure goes in its title.
  async function verdict(el, text) {
    el.dataset.state = "checking";
    el.textContent = words.checking;
    el.title = "";
    try {
      await check(JSON.parse(text), () => {});
      el.dataset.state = "verified";
      el.textContent = words.verified;
    } catch (e) {
      el.dataset.state = "not-verified";
      el.textContent = words.notVerified;
      el.title = e.message;
    }
  }

  // Every line: the download link, then the check, from the same bytes.
  async function lines() {
    for (const cell of document.querySelectorAll("td.receipt")) {
      const data = cell.querySelector(".receipt-data");
      const state = cell.querySelector(".receipt-state");
      const link = cell.querySelector(".receipt-file");
      if (!data || !state || !link) continue;
      const text = JSON.stringify(JSON.parse(data.textContent), null, 2) + "\n";
      // A data: URL, not a blob: one: the bytes stay readable in the
      // link itself, and the page's CSP has no blob: source.
      link.href = "data:application/json;charset=utf-8," + encodeURIComponent(text);
      await verdict(state, text);
    }
  }

  const file = document.getElementById("receipt-file");
  const fileVerdict = document.getElementById("file-verdict");
  if (file && fileVerdict) {
    file.addEventListener("change", async () => {
      if (file.files.length === 0) return;
      await verdict(fileVerdict, await file.files[0].text());
    });
  }
  // For a page that changes a receipt and asks again (and for tests).
  window.jisrCheckLines = lines;
  lines();
})();
