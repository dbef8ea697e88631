// tfnode explorer: one page, routed by the URL's #fragment. Data comes from the node's
// JSON-RPC (POST / and the /ws WebSocket, docs/rpc.md) and, for what one method does not
// answer, from /explorer/api/ (tfnode/explorer/backend.py). No build step, no libraries.
"use strict";

const LATEST = 15; // rows in the live tables
const TX_LOOKBACK = 99; // heights searched for the latest transactions (one JSON-RPC batch: at most 100 calls)
const main = document.getElementById("main");
const statusBar = document.getElementById("status");
let liveBlocks = null; // the <tbody> of the live block table while the home page is shown
let liveTxs = null;
let head = 0;

// ---- DOM helpers: text always goes through textContent, never innerHTML ----

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const link = (href, text, cls) => el("a", { href, class: cls || "mono" }, text);
const short = (h) => (h && h.length > 20 ? h.slice(0, 10) + "…" + h.slice(-6) : h);
const blockLink = (h) => link(`#/block/${h}`, String(h));
const txLink = (h) => link(`#/tx/${h}`, short(h));
const time = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 19);
function kv(pairs) {
  const dl = el("dl", { class: "kv" });
  for (const [k, v] of pairs) dl.append(el("dt", {}, k), el("dd", {}, v));
  return dl;
}
function table(headers, rows, id) {
  const tbody = el("tbody", id ? { id } : {});
  for (const r of rows) tbody.append(r);
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))), tbody);
}
const row = (cells, attrs) => el("tr", attrs || {}, cells.map((c) => el("td", {}, c)));
// Contract values in their JSON form (docs/rpc.md "Conventions"), shown compactly.
function show(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return "[" + v.map(show).join(", ") + "]";
  const keys = Object.keys(v);
  if (keys.length === 1 && keys[0] === "hex") return "0x" + v.hex;
  if (keys.length === 1 && keys[0] === "int") return v.int; // beyond 2**53 (backend.js_safe)
  if (keys.length === 1 && keys[0] === "decimal") return v.decimal;
  if (keys.length === 1 && keys[0] === "dict") return "{" + v.dict.map(([a, b]) => show(a) + ": " + show(b)).join(", ") + "}";
  return "{" + keys.map((k) => k + ": " + show(v[k])).join(", ") + "}";
}

// ---- the node ----

let rpcId = 0;
async function rpc(method, params) {
  const resp = await fetch("/", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: ++rpcId, method, params: params || {} }),
  });
  const body = await resp.json();
  if (body.error) throw new Error(`${body.error.message} (code ${body.error.code})`);
  return body.result;
}
// Several calls in JSON-RPC batches (the node takes at most 100 calls in one); a failed
// call gives null in its place.
const BATCH = 100;
async function rpcBatch(calls) {
  if (calls.length > BATCH) {
    const parts = [];
    for (let i = 0; i < calls.length; i += BATCH) parts.push(rpcBatch(calls.slice(i, i + BATCH)));
    return (await Promise.all(parts)).flat();
  }
  if (!calls.length) return [];
  const base = rpcId;
  rpcId += calls.length;
  const body = calls.map(([method, params], i) => ({ jsonrpc: "2.0", id: base + i + 1, method, params }));
  const resp = await fetch("/", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const answers = await resp.json();
  const byId = new Map((Array.isArray(answers) ? answers : [answers]).map((a) => [a.id, a]));
  return calls.map((_, i) => (byId.get(base + i + 1) || {}).result ?? null);
}
async function api(path) {
  const resp = await fetch("/explorer/api/" + path);
  const body = await resp.json();
  if (!resp.ok) throw new Error(body.error || resp.statusText);
  return body;
}

// ---- live feed: the blocks topic over /ws, reconnecting with back-off ----

let wsDelay = 500;
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => {
    wsDelay = 500;
    ws.send(JSON.stringify({ jsonrpc: "2.0", id: "live", method: "subscribe", params: { topic: "blocks" } }));
  };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.method === "subscription") onBlock(msg.params.result, true);
  };
  ws.onclose = () => {
    statusBar.textContent = `live feed lost; reconnecting in ${wsDelay} ms (height ${head})`;
    setTimeout(connect, wsDelay);
    wsDelay = Math.min(wsDelay * 2, 10000);
    // Blocks published while disconnected are fetched on reconnect by the home page's refresh.
    if (liveBlocks) setTimeout(route, wsDelay);
  };
}

function blockRow(b, fresh) {
  return row(
    [blockLink(b.height), link(`#/block/${b.height}`, short(b.hash)), String(b.tx_count), String(b.proposer), time(b.timestamp_ms)],
    { "data-height": String(b.height), class: fresh ? "new" : "" },
  );
}
function txRow(t, r, fresh) {
  return row(
    [txLink(t.hash), blockLink(t.height), `${t.contract}.${t.method}`, link(`#/address/${t.address}`, short(t.address)), r ? r.status : "…"],
    { "data-tx": t.hash, class: fresh ? "new" : "" },
  );
}
function trim(tbody) {
  while (tbody.children.length > LATEST) tbody.lastChild.remove();
}

// Notifications are handled one at a time, in order: a block that arrives while earlier
// ones are still being fetched waits its turn, so rows never interleave.
let queue = Promise.resolve();
function onBlock(b, fresh) {
  queue = queue.then(() => showBlock(b, fresh)).catch((err) => console.error(err));
}

async function showBlock(b, fresh) {
  head = Math.max(head, b.height);
  statusBar.textContent = `live · height ${head} · ${time(b.timestamp_ms)} UTC`;
  const tbody = liveBlocks;
  const shown = document.getElementById("st-height");
  if (shown) shown.textContent = String(head);
  if (!tbody || tbody.querySelector(`[data-height="${b.height}"]`)) return;
  // Blocks committed between the page's first read and the subscription (or while the
  // socket was down) are fetched, so the table has no gap.
  const top = tbody.firstChild ? Number(tbody.firstChild.getAttribute("data-height")) : b.height - 1;
  const missing = [];
  for (let h = Math.max(top + 1, b.height - LATEST); h < b.height; h++) missing.push(h);
  const older = (await rpcBatch(missing.map((h) => ["get_block", { height: h }]))).filter(Boolean);
  for (const x of [...older, b]) {
    if (tbody.querySelector(`[data-height="${x.height}"]`)) continue;
    tbody.prepend(blockRow(x, fresh));
    if (x.tx_count > 0) await addTxs(x.height, fresh);
  }
  trim(tbody);
}

async function addTxs(height, fresh) {
  const tbody = liveTxs;
  const block = await rpc("get_block", { height, txs: true });
  const hashes = block.txs.slice(-LATEST);
  const got = await rpcBatch(hashes.flatMap((h) => [["get_transaction", { hash: h }], ["get_receipt", { hash: h }]]));
  for (let i = 0; i < hashes.length; i++) {
    if (got[2 * i] && tbody && !tbody.querySelector(`[data-tx="${hashes[i]}"]`)) tbody.prepend(txRow(got[2 * i], got[2 * i + 1], fresh));
  }
  if (tbody) trim(tbody);
}

// ---- pages ----

async function pageHome() {
  const st = await rpc("status");
  head = st.executed_height;
  statusBar.textContent = `live · height ${head} · chain ${st.chain_id} · node ${st.node}`;
  const heights = [];
  for (let h = head; h >= 1 && heights.length < LATEST; h--) heights.push(h);
  const blocks = (await rpcBatch(heights.map((h) => ["get_block", { height: h }]))).filter(Boolean);
  liveBlocks = null;
  const tbB = table(["height", "hash", "txs", "proposer", "time (UTC)"], blocks.map((b) => blockRow(b, false)), "blocks");
  const tbT = table(["tx", "block", "call", "sender", "status"], [], "txs");
  main.replaceChildren(
    el("h2", {}, `Chain ${st.chain_id}`),
    kv([
      ["height (executed)", el("span", { id: "st-height" }, String(st.executed_height))],
      ["certified height", String(st.certified_height)],
      ["round / epoch", `${st.round} / ${st.epoch}`],
      ["peers", String(st.peers)],
      ["mempool", `${st.mempool.txs} txs, ${st.mempool.batches} batches`],
    ]),
    el("div", { class: "cols" }, el("section", {}, el("h3", {}, "Latest blocks"), tbB), el("section", {}, el("h3", {}, "Latest transactions"), tbT)),
  );
  liveBlocks = tbB.querySelector("tbody");
  liveTxs = tbT.querySelector("tbody");
  // The newest transactions: from the newest blocks that have any (looking up to TX_LOOKBACK
  // heights back, in one batch), oldest first so the newest ends on top.
  const older = [];
  for (let h = head - blocks.length; h >= 1 && older.length < TX_LOOKBACK; h--) older.push(h);
  const recent = blocks.concat((await rpcBatch(older.map((h) => ["get_block", { height: h }]))).filter(Boolean));
  const withTxs = [];
  for (let i = 0, n = 0; i < recent.length && n < LATEST; i++) {
    if (recent[i].tx_count > 0) {
      withTxs.push(recent[i]);
      n += recent[i].tx_count;
    }
  }
  for (const b of withTxs.reverse()) await addTxs(b.height, false);
}

async function pageBlock(id) {
  const b = /^\d+$/.test(id) ? await rpc("get_block", { height: Number(id), txs: true }) : await rpc("get_block", { hash: id, txs: true });
  const got = await rpcBatch(b.txs.slice(0, 500).flatMap((h) => [["get_transaction", { hash: h }], ["get_receipt", { hash: h }]]));
  const rows = [];
  for (let i = 0; i < got.length; i += 2) if (got[i]) rows.push(txRow(got[i], got[i + 1], false));
  main.replaceChildren(
    el("h2", {}, `Block ${b.height}`),
    el("p", {}, b.height > 1 ? link(`#/block/${b.height - 1}`, "← previous", "") : null, " ", link(`#/block/${b.height + 1}`, "next →", "")),
    kv([
      ["height", el("span", { id: "block-height" }, String(b.height))],
      ["hash", el("code", {}, b.hash)],
      ["round / epoch", `${b.round} / ${b.epoch}`],
      ["proposer", String(b.proposer)],
      ["time (UTC)", time(b.timestamp_ms)],
      ["transactions", el("span", { id: "block-txcount" }, String(b.tx_count))],
      ["batches", String(b.batches.length)],
      ["state root", el("code", {}, b.state_root)],
      ["receipts root", el("code", {}, b.receipts_root)],
      ["execution", `certifies height ${b.exec_height}: ${b.exec_root}`],
      ["QC", el("code", {}, short(b.qc))],
    ]),
    el("h3", {}, `Transactions (${b.tx_count})`),
    table(["tx", "block", "call", "sender", "status"], rows, "block-txs"),
  );
}

function argsView(tx) {
  if (tx.error) return el("span", { class: "bad" }, tx.error);
  const parts = (tx.args || []).map(show);
  for (const [k, v] of Object.entries(tx.kwargs || {})) parts.push(`${k}=${show(v)}`);
  return el("code", { id: "tx-args" }, `${tx.contract}.${tx.method}(${parts.join(", ")})`);
}

async function pageTx(hash) {
  const { tx, receipt } = await api("tx/" + hash);
  const r = receipt;
  const events = r ? r.events.map((e) => row([`${e.contract}.${e.name}`, el("code", {}, show(e.fields))])) : [];
  const result = el("div", { id: "verify-result" });
  main.replaceChildren(
    el("h2", {}, "Transaction"),
    kv([
      ["hash", el("code", { id: "tx-hash" }, tx.hash)],
      ["block", blockLink(tx.height)],
      ["index", String(tx.index)],
      ["sender", el("code", {}, tx.address)],
      ["call", argsView(tx)],
      ["nonce", el("span", { id: "tx-nonce" }, show(tx.nonce))],
      ["expiry (height)", show(tx.expiry)],
      ["gas limit", String(tx.gas_limit)],
    ]),
    el("h3", {}, "Receipt"),
    r
      ? kv([
          ["status", el("span", { id: "receipt-status", class: r.status === "ok" ? "ok" : "bad" }, r.status)],
          ["gas used", String(r.gas_used)],
          ["return value", el("code", {}, show(r.return_value))],
          ["revert reason", r.revert_reason || "–"],
        ])
      : el("p", { class: "muted" }, "not executed yet"),
    el("h3", {}, `Events (${events.length})`),
    table(["event", "fields"], events, "events"),
    el("h3", {}, "Proof"),
    el("p", {}, el("button", { id: "verify", onclick: () => verify(tx.hash, result) }, "Verify receipt against a QC"), " ",
      el("span", { class: "muted" }, "checks the QC's signatures with the validator set, the execution history path and the receipt's Merkle path")),
    result,
  );
}

async function verify(hash, out) {
  out.replaceChildren(el("span", { class: "muted" }, "checking…"));
  try {
    const v = await api("verify/" + hash);
    const steps = el("ul", { class: "steps" }, v.steps.map((s) => el("li", {}, el("span", { class: s.ok ? "ok" : "bad" }, s.ok ? "✓ " : "✗ "), `${s.check}: ${s.detail}`)));
    const verdict = v.ok
      ? `verified: receipt at height ${v.height}, certified by a QC of ${v.validators} validators at height ${v.qc_height}`
      : "NOT verified";
    out.replaceChildren(el("p", { id: "verify-verdict", class: v.ok ? "ok" : "bad" }, verdict), steps);
  } catch (err) {
    out.replaceChildren(el("p", { id: "verify-verdict", class: "bad" }, "NOT verified: " + err.message));
  }
}

async function pageContracts() {
  const { contracts, indexed_height } = await api("contracts");
  main.replaceChildren(
    el("h2", {}, "Contracts"),
    el("p", { class: "muted" }, `deployed through governance, called, or bundled at genesis; blocks read up to ${indexed_height}`),
    table(
      ["name", "version", "code hash (SM3)", "since height", "calls seen"],
      contracts.map((c) => row([link(`#/contract/${c.name}`, c.name, ""), String(c.version ?? "–"), el("code", {}, short(c.code_hash) || "–"), String(c.height ?? "–"), String(c.calls)])),
      "contracts",
    ),
  );
}

async function pageContract(name) {
  const c = await api("contract/" + encodeURIComponent(name));
  main.replaceChildren(
    el("h2", {}, `Contract ${c.name}`),
    kv([["version", String(c.version)], ["code hash (SM3)", el("code", {}, c.code_hash)], ["since height", String(c.height)], ["calls seen", String(c.calls)]]),
    ...c.versions.flatMap((v) => [
      el("h3", {}, `Version ${v.version} · height ${v.height}`, v.tx ? " · " : "", v.tx ? txLink(v.tx) : ""),
      el("pre", {}, v.source ?? "(source not stored)"),
    ]),
  );
}

async function pageMembers() {
  const m = await api("members");
  const connected = new Map(m.peers.map((p) => [p.public_key, p.connected]));
  main.replaceChildren(
    el("h2", {}, "Members"),
    table(["address", "organisation", "roles"], m.members.map((x) => row([el("code", {}, x.address), x.organisation || "–", (x.roles || []).join(", ")])), "members"),
    el("p", { class: "muted" }, m.policy ? `approval policy: more than ${m.policy.more_than[0]}/${m.policy.more_than[1]} of members with role ${m.policy.roles.join(" or ")}, at least ${m.policy.min_approvals}` : ""),
    el("h3", {}, "Validators"),
    table(["id", "name", "power", "public key", "link"], m.validators.map((v) => row([String(v.id), v.name, String(v.power), el("code", {}, short(v.public_key)), connected.has(v.public_key) ? (connected.get(v.public_key) ? "connected" : "down") : "this node"])), "validators"),
  );
}

async function pageProposals() {
  const { proposals } = await api("proposals");
  main.replaceChildren(
    el("h2", {}, "Governance proposals"),
    table(
      ["id", "kind", "subject", "proposer", "approvals", "status", "height"],
      proposals.map((p) => row([String(p.id), p.kind, p.name ? link(`#/contract/${p.name}`, p.name, "") : el("code", {}, show(p.payload)), el("code", {}, short(p.proposer)), String(p.approvals.length), p.status, String(p.height)])),
      "proposals",
    ),
  );
}

async function pageIot() {
  const d = await api("iot");
  main.replaceChildren(
    el("h2", {}, "IoT"),
    el("p", { class: "muted" }, `blocks read up to ${d.indexed_height}`),
    el("h3", {}, "Devices"),
    table(["device", "kind", "owner", "bound contract", "ref", "status", "last seq", "height"], d.devices.map((x) => row([el("code", {}, x.device), x.kind, el("code", {}, short(x.owner)), x.contract || "–", x.ref || "–", x.status || "–", String(x.last_seq ?? "–"), blockLink(x.height)])), "devices"),
    el("h3", {}, "Gateways"),
    table(["gateway", "owner", "height"], d.gateways.map((g) => row([el("code", {}, short(g.gateway)), el("code", {}, short(g.owner)), blockLink(g.height)])), "gateways"),
    el("h3", {}, "Batches"),
    table(["gateway", "seq", "readings", "accepted", "root", "tx"], d.batches.map((b) => row([el("code", {}, short(b.gateway)), String(b.batch_seq), String(b.count), String(b.accepted), el("code", {}, short(b.root)), txLink(b.tx)])), "batches"),
  );
}

async function pageAddress(addr) {
  const bal = await rpc("query", { contract: "asset", method: "balance", args: [addr] }).catch(() => null);
  const mem = await rpc("query", { contract: "governance", method: "member", args: [addr] }).catch(() => null);
  main.replaceChildren(
    el("h2", {}, "Account"),
    kv([["address", el("code", {}, addr)], ["balance", bal && bal.status === "ok" ? show(bal.value) : "–"], ["member", mem && mem.value ? show(mem.value) : "no"]]),
  );
}

// ---- routing ----

async function route() {
  const [, page, arg] = (location.hash || "#/").split("/");
  if (page !== "") liveBlocks = liveTxs = null;
  const a = arg ? decodeURIComponent(arg) : "";
  try {
    if (page === "" || page === undefined) await pageHome();
    else if (page === "block") await pageBlock(a);
    else if (page === "tx") await pageTx(a);
    else if (page === "contracts") await pageContracts();
    else if (page === "contract") await pageContract(a);
    else if (page === "members") await pageMembers();
    else if (page === "proposals") await pageProposals();
    else if (page === "iot") await pageIot();
    else if (page === "address") await pageAddress(a);
    else throw new Error(`no page ${page}`);
  } catch (err) {
    main.replaceChildren(el("h2", {}, "Not found"), el("p", { id: "error", class: "bad" }, err.message));
  }
}

document.getElementById("search").addEventListener("submit", async (e) => {
  e.preventDefault();
  const q = document.getElementById("q").value.trim();
  if (/^\d+$/.test(q)) location.hash = `#/block/${q}`;
  else if (/^[0-9a-fA-F]{64}$/.test(q)) {
    const isTx = await rpc("get_transaction", { hash: q.toLowerCase() }).then(() => true, () => false);
    location.hash = isTx ? `#/tx/${q.toLowerCase()}` : `#/block/${q.toLowerCase()}`;
  } else if (/^0x[0-9a-fA-F]{40}$/.test(q)) location.hash = `#/address/${q.toLowerCase()}`;
  else location.hash = `#/contract/${encodeURIComponent(q)}`;
});
window.addEventListener("hashchange", route);
route();
connect();
