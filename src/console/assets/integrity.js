// The Log integrity page: checks, in the browser and trusting only the
// verifier key, each checkpoint's Ed25519 signature and, for each pair of
// consecutive checkpoints, the RFC 9162 consistency proof the node gave
// (functions from verify.js, loaded before this file).
"use strict";
(function () {
  const V = window.jisrVerify;

  function mark(id, ok, text) {
    const cell = document.getElementById(id);
    if (!cell) return;
    cell.dataset.state = ok ? "ok" : "bad";
    cell.textContent = text;
  }

  // The signature of each checkpoint; the parsed notes (null if unreadable).
  async function signatures(data, verifier) {
    const notes = [];
    for (const [row, c] of data.checkpoints.entries()) {
      try {
        const note = V.parseNote(c.note);
        const ok = await V.signatureOk(note, verifier);
        mark("sig-" + row, ok, ok ? "signed" : "NOT signed by " + verifier.name);
        notes.push(ok ? note : null);
      } catch (e) {
        mark("sig-" + row, false, "NOT readable: " + e.message);
        notes.push(null);
      }
    }
    return notes;
  }

  // Row `row` against the checkpoint before it; the failure, if any.
  async function consistency(data, notes, row) {
    const [newer, older, proof] = [notes[row], notes[row + 1], data.proofs[row]];
    if (!newer || !older) return "a checkpoint of the pair is not signed";
    if (proof.error) return "the node gave no proof (" + proof.error + ")";
    if (BigInt(proof.old_size) !== older.size || BigInt(proof.new_size) !== newer.size) {
      return "the proof is for other tree sizes";
    }
    try {
      await V.checkConsistency(older.size, older.root, newer.size, newer.root, proof.hashes.map(V.b64));
      return null;
    } catch (e) {
      return e.message;
    }
  }

  async function run() {
    const verdict = document.getElementById("verdict");
    const block = document.getElementById("checkpoint-data");
    if (!verdict || !block) return;
    verdict.dataset.state = "checking";
    verdict.textContent = "Checking…";
    const data = JSON.parse(block.textContent);
    let failures = 0;
    try {
      const verifier = await V.parseVerifier(data.verifier_key);
      const notes = await signatures(data, verifier);
      const rows = document.querySelectorAll("#checkpoints tbody tr").length;
      for (let row = 0; row < rows; row++) {
        if (!notes[row]) failures++;
        if (row + 1 >= data.checkpoints.length) {
          mark("cons-" + row, true, "the first checkpoint");
          continue;
        }
        const why = await consistency(data, notes, row);
        if (why) failures++;
        const from = data.checkpoints[row + 1].position;
        mark("cons-" + row, !why, why ? "NOT consistent: " + why + "." : "consistent with #" + from);
      }
    } catch (e) {
      verdict.dataset.state = "not-verified";
      verdict.textContent = "NOT verified: " + e.message + ".";
      return;
    }
    verdict.dataset.state = failures === 0 ? "verified" : "not-verified";
    verdict.textContent = failures === 0
      ? "Verified: every checkpoint here is signed by the node, and each extends the one before."
      : "NOT verified: " + failures + " check(s) failed; see the rows marked NOT.";
  }

  async function copy() {
    const key = document.getElementById("verifier-key");
    const state = document.getElementById("copy-state");
    try {
      await navigator.clipboard.writeText(key.textContent);
      state.textContent = "Copied.";
    } catch (e) {
      // No clipboard permission: select the key for Ctrl+C instead.
      window.getSelection().selectAllChildren(key);
      state.textContent = "Selected: press Ctrl+C to copy.";
    }
  }

  document.getElementById("recheck")?.addEventListener("click", run);
  document.getElementById("copy-key")?.addEventListener("click", copy);
  run();
})();
