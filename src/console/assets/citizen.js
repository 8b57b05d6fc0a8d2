// The citizen page: checks each exchange's receipt in the browser with
// verify.js (inclusion path and Ed25519 signed checkpoint, trusting only
// the verifier key), shows the verdict in the page's language, and offers
// the same receipt as a file; a receipt file the citizen picks is checked
// the same way, its witnesses included. Under each line, each witness the gateway knows and
// whether its cosignature of the receipt's checkpoint verifies, and
// whether the k-of-n policy is met.
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

  // The witnesses the gateway knows and how many must cosign (the page's
  // `#witnesses` block); none when it has no witness.
  const known = (() => {
    const block = document.getElementById("witnesses");
    try {
      return block ? JSON.parse(block.textContent) : { quorum: 0, witnesses: [] };
    } catch (e) {
      return { quorum: 0, witnesses: [] };
    }
  })();
  const witnessWords = {
    verified: said.cosigned || "cosignature verified",
    failed: said.cosignatureBad || "cosignature does NOT verify",
    absent: said.noCosignature || "no cosignature",
  };

  // Under a line's verdict: each witness's cosignature of the receipt's
  // checkpoint, and whether the k-of-n policy is met.
  async function witnesses(cell, receipt) {
    const check = window.jisrCheckWitnesses;
    cell.querySelectorAll(".witnesses, .quorum").forEach((e) => e.remove());
    if (!check || known.witnesses.length === 0) return;
    const list = document.createElement("ul");
    list.className = "witnesses";
    list.dataset.state = "checking";
    list.setAttribute("aria-label", said.witnesses || "Witnesses");
    cell.append(list);
    let states;
    try {
      states = await check(receipt, known.witnesses);
    } catch (e) {
      states = known.witnesses.map((w) => ({ name: w.name, state: "failed" }));
    }
    for (const { name, state } of states) {
      const li = document.createElement("li");
      li.dataset.witness = name;
      li.dataset.state = state;
      li.textContent = name + ": " + witnessWords[state];
      list.append(li);
    }
    const cosigned = states.filter((w) => w.state === "verified").length;
    const met = cosigned >= known.quorum;
    const quorum = document.createElement("small");
    quorum.className = "quorum";
    quorum.dataset.state = met ? "met" : "not-met";
    quorum.textContent = ((met ? said.quorumMet : said.quorumNotMet) || "{k} of {n}")
      .replace("{k}", known.quorum).replace("{n}", known.witnesses.length);
    cell.append(quorum);
    list.dataset.state = "done";
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
      await witnesses(cell, JSON.parse(text));
    }
  }

  const file = document.getElementById("receipt-file");
  const fileVerdict = document.getElementById("file-verdict");
  if (file && fileVerdict) {
    file.addEventListener("change", async () => {
      if (file.files.length === 0) return;
      const text = await file.files[0].text();
      await verdict(fileVerdict, text);
      let receipt;
      try {
        receipt = JSON.parse(text);
      } catch (e) {
        return; // the verdict already says the file is not a receipt
      }
      await witnesses(fileVerdict.parentElement, receipt);
    });
  }
  // For a page that changes a receipt and asks again (and for tests).
  window.jisrCheckLines = lines;
  lines();
})();
