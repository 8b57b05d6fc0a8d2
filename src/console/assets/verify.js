// Checks an audit entry's receipt in the browser, trusting only the
// verifier key: the entry's leaf hash, its RFC 6962 inclusion path to the
// root of the signed checkpoint (SHA-256 via SubtleCrypto), and the
// checkpoint's Ed25519 signature (C2SP signed note) with WebCrypto; and,
// for the citizen page, each witness's cosignature of that checkpoint
// (C2SP tlog-cosignature/v1).
"use strict";
(function () {
  const utf8 = (s) => new TextEncoder().encode(s);
  const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  };
  const sha256 = async (b) => new Uint8Array(await crypto.subtle.digest("SHA-256", b));
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const leafHash = (data) => sha256(concat(new Uint8Array([0]), data));
  const nodeHash = (l, r) => sha256(concat(new Uint8Array([1]), l, r));

  // RFC 9162 section 2.1.3.2, step for step (BigInt: sizes beyond 2^32).
  async function rootFromPath(index, size, leaf, proof) {
    if (index >= size) throw new Error("the entry is beyond the tree");
    let fn = index, sn = size - 1n, r = leaf;
    for (const p of proof) {
      if (sn === 0n) throw new Error("the proof is too long");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n; sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("the proof is too short");
    return r;
  }

  // RFC 9162 section 2.1.4.2: the tree of `oldSize` entries with root
  // `oldRoot` is a prefix of the tree of `newSize` with root `newRoot`.
  async function checkConsistency(oldSize, oldRoot, newSize, newRoot, proof) {
    if (oldSize > newSize) throw new Error("the older checkpoint has more entries than the newer");
    if (oldSize === newSize || oldSize === 0n) {
      if (proof.length !== 0) throw new Error("the consistency proof should be empty");
      const expected = oldSize === 0n ? await sha256(new Uint8Array(0)) : newRoot;
      if (!same(oldRoot, expected)) throw new Error("two checkpoints of the same tree have different roots");
      return;
    }
    if (proof.length === 0) throw new Error("the consistency proof is empty");
    // A complete old tree is its own first node on the path.
    const path = (oldSize & (oldSize - 1n)) === 0n ? [oldRoot, ...proof] : proof;
    let fn = oldSize - 1n, sn = newSize - 1n;
    while ((fn & 1n) === 1n) { fn >>= 1n; sn >>= 1n; }
    let fr = path[0], sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0n) throw new Error("the consistency proof is too long");
      if ((fn & 1n) === 1n || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn >>= 1n; sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("the consistency proof is too short");
    if (!same(fr, oldRoot)) throw new Error("the consistency proof does not lead to the older root");
    if (!same(sr, newRoot)) throw new Error("the consistency proof does not lead to the newer root");
  }

  // `<name>+<hex key id>+base64(alg || public key)`: alg 0x01 for a log's
  // key (signed note), 0x04 for a witness's (C2SP tlog-cosignature/v1).
  // The key id is SHA-256(name || "\n" || alg || key)[:4] either way.
  async function parseVerifier(text, alg = 1) {
    // The name has no "+", the id is 8 hex digits; base64 may hold "+".
    const m = /^([^+\s]+)\+([0-9a-f]{8})\+(\S+)$/.exec(text.trim());
    if (!m) throw new Error("the verifier key is malformed");
    const [, name, id, key] = m;
    const raw = b64(key);
    if (raw.length !== 33 || raw[0] !== alg) throw new Error("the verifier key is not Ed25519");
    const computed = (await sha256(concat(utf8(name + "\n"), raw))).slice(0, 4);
    if (hex(computed) !== id) throw new Error("the verifier key's id does not match its key");
    return { name, id: computed, key: raw.slice(1) };
  }

  // The note's text (signed bytes) and its checkpoint fields.
  function parseNote(note) {
    const split = note.indexOf("\n\n");
    if (split < 0) throw new Error("the checkpoint is not a signed note");
    const text = note.slice(0, split + 1);
    const lines = text.split("\n");
    if (lines.length < 4) throw new Error("the checkpoint has fewer than three lines");
    const signatures = note.slice(split + 2).split("\n").filter((l) => l.length > 0);
    return { text, origin: lines[0], size: BigInt(lines[1]), root: b64(lines[2]), signatures };
  }

  async function signatureOk(note, verifier) {
    const key = await crypto.subtle.importKey("raw", verifier.key, { name: "Ed25519" }, false, ["verify"]);
    for (const line of note.signatures) {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m || m[1] !== verifier.name) continue;
      const blob = b64(m[2]);
      if (blob.length !== 68 || !same(blob.slice(0, 4), verifier.id)) continue;
      if (await crypto.subtle.verify({ name: "Ed25519" }, key, blob.slice(4), utf8(note.text))) return true;
    }
    return false;
  }

  // A witness's cosignature of `note` (C2SP tlog-cosignature/v1): a line
  // `— <name> base64(key id || u64 time || Ed25519 signature)` over
  // "cosignature/v1\ntime <time>\n" and the checkpoint text. "verified",
  // "failed" (a line by its key that does not verify) or "absent".
  async function cosignatureState(note, cosigner) {
    const key = await crypto.subtle.importKey("raw", cosigner.key, { name: "Ed25519" }, false, ["verify"]);
    let state = "absent";
    for (const line of note.signatures) {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m || m[1] !== cosigner.name) continue;
      let blob;
      try { blob = b64(m[2]); } catch (e) { state = "failed"; continue; }
      if (blob.length < 4 || !same(blob.slice(0, 4), cosigner.id)) continue;
      if (blob.length !== 76) { state = "failed"; continue; }
      const time = blob.slice(4, 12).reduce((t, b) => (t << 8n) | BigInt(b), 0n);
      const signed = utf8("cosignature/v1\ntime " + time + "\n" + note.text);
      if (await crypto.subtle.verify({ name: "Ed25519" }, key, blob.slice(12), signed)) return "verified";
      state = "failed";
    }
    return state;
  }

  // Each of `witnesses` ({name, verifier_key}) with the state of its
  // cosignature of the receipt's checkpoint; a key the page cannot read
  // counts as failed.
  async function checkWitnesses(receipt, witnesses) {
    const note = parseNote(receipt.checkpoint);
    const states = [];
    for (const w of witnesses) {
      let state;
      try {
        state = await cosignatureState(note, await parseVerifier(w.verifier_key, 4));
      } catch (e) {
        state = "failed";
      }
      states.push({ name: w.name, state });
    }
    return states;
  }

  async function check(receipt, step) {
    const verifier = await parseVerifier(receipt.verifier_key);
    const note = parseNote(receipt.checkpoint);
    if (!(await signatureOk(note, verifier))) throw new Error("the checkpoint is not signed by " + verifier.name);
    step("Checkpoint signed by " + verifier.name + " (Ed25519): tree of " + note.size + " entries.");
    if (note.size !== BigInt(receipt.tree_size)) throw new Error("the proof is for another tree size");
    const leaf = await leafHash(b64(receipt.record));
    step("Entry hash: " + hex(leaf) + ".");
    // `proof` on the entry page; `inclusion_proof` in receipt files.
    const proof = (receipt.proof || receipt.inclusion_proof).map(b64);
    const root = await rootFromPath(BigInt(receipt.index), note.size, leaf, proof);
    if (!same(root, note.root)) throw new Error("the inclusion proof leads to another root than the checkpoint's");
    step("Inclusion path of " + proof.length + " hashes leads to the signed root " + hex(root) + ".");
  }

  async function run() {
    const verdict = document.getElementById("verdict");
    const steps = document.getElementById("steps");
    const data = document.getElementById("receipt");
    if (!verdict || !steps || !data) return;
    steps.replaceChildren();
    verdict.dataset.state = "checking";
    verdict.textContent = "Checking…";
    const step = (text) => { const li = document.createElement("li"); li.textContent = text; steps.append(li); };
    try {
      await check(JSON.parse(data.textContent), step);
      verdict.dataset.state = "verified";
      verdict.textContent = "Verified: this entry is in the log the node signed.";
    } catch (e) {
      verdict.dataset.state = "not-verified";
      verdict.textContent = "NOT verified: " + e.message + ".";
    }
  }

  // For other pages' scripts (the citizen page checks each line's receipt).
  window.jisrCheckReceipt = check;
  window.jisrCheckWitnesses = checkWitnesses;
  // For the Log integrity page (assets/integrity.js).
  window.jisrVerify = { parseVerifier, parseNote, signatureOk, checkConsistency, b64 };

  const again = document.getElementById("recheck");
  if (again) again.addEventListener("click", run);
  run();
})();
