// PouchDB 9 live sync against settee: `node pouchdb_sync.mjs URL DB [--docs N]`.
//
// A local in-memory PouchDB syncs with settee's DB through `db.sync(remote, {live: true,
// retry: true})` while both sides write: creates (half on each side), updates, deletes,
// attachments (inline base64 on both sides, standalone PUT/DELETE on settee), then conflicts made
// in both directions while the sync is paused (offline edits), resolved the same way on both sides.
// Every step checks both sides document by document: same ids, same winning revs, same bodies,
// same attachment digests and bytes, same `_conflicts`.  Exits 1 with `STEP ... FAILED: ...`
// lines on any mismatch.

import PouchDB from 'pouchdb-core';
import HttpAdapter from 'pouchdb-adapter-http';
import MemoryAdapter from 'pouchdb-adapter-memory';
import Replication from 'pouchdb-replication';
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { Steps, assert, assertEqual, http, parseArgs, waitFor, Mismatch } from './lib.mjs';

PouchDB.plugin(HttpAdapter).plugin(MemoryAdapter).plugin(Replication);

const opts = parseArgs(process.argv.slice(2), ['url', 'db']);
const TOTAL = Number(opts.docs || 500);
const HALF = TOTAL / 2;
const CONVERGE_MS = Number(opts['converge-ms'] || 30000);
const base = opts.url;
const dbPath = '/' + encodeURIComponent(opts.db);
const steps = new Steps(opts);

const local = new PouchDB(`local-${opts.db}-${Date.now()}`, { adapter: 'memory' });
const remote = new PouchDB(`${base}/${encodeURIComponent(opts.db)}`);

const pad = (i) => String(i).padStart(4, '0');
const localId = (i) => `L${pad(i)}`;
const remoteId = (i) => `R${pad(i)}`;
const bytesFor = (id, gen) => Buffer.from(`attachment of ${id} generation ${gen} `.repeat(3 + (gen % 5)));
const md5Digest = (buf) => 'md5-' + createHash('md5').update(buf).digest('base64');

// What each side should hold at the end, built up as the steps write.
const expectDeleted = new Set();
const expectAtt = new Map(); // id -> {name -> Buffer}

// -- the sync and what it reports ---------------------------------------------------------------

const events = { denied: [], errors: [], pausedErrors: [], changes: 0 };
let sync = null;

function startSync() {
  const s = local.sync(remote, { live: true, retry: true, back_off_function: () => 200 });
  events.read = { push: 0, pull: 0 };
  s.on('change', (info) => {
    events.changes++;
    events.read[info.direction] += info.change.docs.length;
  });
  s.on('denied', (err) => { events.denied.push(err); });
  s.on('error', (err) => { events.errors.push(err); });
  s.on('paused', (err) => { if (err) events.pausedErrors.push(err); });
  s.completed = new Promise((resolve) => s.on('complete', resolve));
  return s;
}

async function stopSync() {
  if (!sync) return;
  const s = sync;
  sync = null;
  s.cancel();
  await Promise.race([s.completed, new Promise((r) => setTimeout(r, 5000))]);
}

function eventTrouble() {
  const out = [];
  if (events.denied.length) out.push(`denied: ${JSON.stringify(events.denied.slice(0, 3))}`);
  if (events.errors.length) out.push(`error: ${events.errors.slice(0, 3).map(String).join('; ')}`);
  if (events.pausedErrors.length) {
    out.push(`paused with error (retried): ${events.pausedErrors.slice(0, 3)
      .map((e) => `${e.status || ''} ${e.name || ''} ${e.message || e.reason || e}`).join('; ')}`);
  }
  return out.join(' | ');
}

// -- comparing the two sides --------------------------------------------------------------------

function summary(doc) {
  const out = { rev: doc._rev, conflicts: [...(doc._conflicts || [])].sort(), body: {}, atts: {} };
  for (const [k, v] of Object.entries(doc)) {
    if (!k.startsWith('_')) out.body[k] = v;
  }
  for (const [name, a] of Object.entries(doc._attachments || {})) {
    out.atts[name] = { digest: a.digest, content_type: a.content_type };
  }
  return out;
}

async function localState() {
  const res = await local.allDocs({ include_docs: true, conflicts: true });
  return new Map(res.rows.map((r) => [r.id, summary(r.doc)]));
}

async function remoteState() {
  const res = await http(base, 'GET', `${dbPath}/_all_docs?include_docs=true&conflicts=true`);
  if (res.status !== 200) throw new Mismatch(`settee ${res.describe()}`);
  return new Map(res.body.rows.map((r) => [r.id, summary(r.doc)]));
}

/** Differences between the two sides, or null when they agree (and hold `expectCount` docs). */
async function differences(expectCount) {
  const [l, r] = await Promise.all([localState(), remoteState()]);
  const diffs = [];
  if (expectCount !== undefined && (l.size !== expectCount || r.size !== expectCount)) {
    diffs.push(`doc counts: pouchdb ${l.size}, settee ${r.size}, expected ${expectCount}`);
  }
  for (const id of new Set([...l.keys(), ...r.keys()])) {
    const a = l.get(id);
    const b = r.get(id);
    if (!a || !b) diffs.push(`${id}: only on ${a ? 'pouchdb' : 'settee'}`);
    else if (JSON.stringify(a) !== JSON.stringify(b)) {
      diffs.push(`${id}: pouchdb ${JSON.stringify(a)} != settee ${JSON.stringify(b)}`);
    }
  }
  if (!diffs.length) return null;
  const trouble = eventTrouble();
  return `${diffs.length} difference(s), first: ${diffs.slice(0, 4).join('; ')}` +
    (trouble ? ` [sync events: ${trouble}]` : '');
}

async function converge(what, expectCount) {
  await waitFor(`${what}: PouchDB and settee agree`, () => differences(expectCount), CONVERGE_MS);
}

async function remoteDoc(id, query = '') {
  const res = await http(base, 'GET', `${dbPath}/${encodeURIComponent(id)}${query}`);
  if (res.status !== 200) throw new Mismatch(`settee ${res.describe()}`);
  return res.body;
}

async function remotePut(doc) {
  const res = await http(base, 'PUT', `${dbPath}/${encodeURIComponent(doc._id)}`, doc);
  if (res.status !== 201 && res.status !== 202) throw new Mismatch(`settee ${res.describe()}`);
  return res.body.rev;
}

// Ids and attachment names that need escaping on the wire, made on both sides.
const ODD_IDS = ['with space', 'slash/inside', 'plus+sign', 'ünïcödé-é', 'percent%25x', 'emoji-😀',
  'colon:x', 'q?mark', 'hash#tag', 'amp&eq=1', "quote'\"", 'back\\slash'];
const ODD_ATT = 'dir/file name+ü.txt';
let extra = 0;

function liveCount() {
  return TOTAL + extra - expectDeleted.size;
}

// -- the steps ----------------------------------------------------------------------------------

await steps.run('setup', async () => {
  const res = await http(base, 'PUT', dbPath);
  assert(res.status === 201, `create the settee db: ${res.describe()}`);
  const info = await remote.info();
  assertEqual(info.doc_count, 0, 'remote.info().doc_count of the new db');
  sync = startSync();
});

await steps.run('create', async () => {
  // PouchDB side: HALF docs in one bulkDocs, every 5th with an inline attachment.
  const docs = [];
  for (let i = 0; i < HALF; i++) {
    const doc = { _id: localId(i), side: 'local', n: i, gen: 1, tags: ['a', i % 7], nested: { i } };
    if (i % 5 === 0) {
      const data = bytesFor(doc._id, 1);
      doc._attachments = { 'note.txt': { content_type: 'text/plain', data } };
      expectAtt.set(doc._id, { 'note.txt': data });
    }
    docs.push(doc);
  }
  const out = await local.bulkDocs(docs);
  assert(out.every((r) => r.ok), `local bulkDocs: ${JSON.stringify(out.filter((r) => !r.ok))}`);
  // settee side: most through _bulk_docs (inline base64 every 5th), the last 50 one PUT at a time,
  // every 5th of those with a standalone attachment PUT.
  const bulk = [];
  const singles = Math.min(50, HALF);
  for (let i = 0; i < HALF - singles; i++) {
    const doc = { _id: remoteId(i), side: 'remote', n: i, gen: 1, tags: ['b', i % 3], nested: { i } };
    if (i % 5 === 0) {
      const data = bytesFor(doc._id, 1);
      doc._attachments = { 'photo.bin': { content_type: 'application/octet-stream',
        data: data.toString('base64') } };
      expectAtt.set(doc._id, { 'photo.bin': data });
    }
    bulk.push(doc);
  }
  const res = await http(base, 'POST', `${dbPath}/_bulk_docs`, { docs: bulk });
  assert(res.status === 201 && res.body.every((r) => r.ok), `settee ${res.describe()}`);
  for (let i = HALF - singles; i < HALF; i++) {
    const id = remoteId(i);
    const rev = await remotePut({ _id: id, side: 'remote', n: i, gen: 1, tags: ['b'], nested: { i } });
    if (i % 5 === 0) {
      const data = bytesFor(id, 1);
      const put = await http(base, 'PUT', `${dbPath}/${id}/readme.txt?rev=${rev}`, data,
        { 'Content-Type': 'text/plain' });
      assert(put.status === 201, `standalone attachment: ${put.describe()}`);
      expectAtt.set(id, { 'readme.txt': data });
    }
  }
  await converge('after creates', TOTAL);
});

await steps.run('odd-ids', async () => {
  for (const [k, raw] of ODD_IDS.entries()) {
    for (const side of ['local', 'remote']) {
      const id = `${side}-${raw}`;
      const data = bytesFor(id, k);
      const doc = { _id: id, side, odd: raw };
      if (side === 'local') {
        await local.put({ ...doc, _attachments: { [ODD_ATT]: { content_type: 'text/plain', data } } });
      } else {
        const rev = await remotePut(doc);
        const put = await http(base, 'PUT', `${dbPath}/${encodeURIComponent(id)}/` +
          `${ODD_ATT.split('/').map(encodeURIComponent).join('/')}?rev=${rev}`, data, { 'Content-Type': 'text/plain' });
        assert(put.status === 201, `standalone attachment on ${JSON.stringify(id)}: ${put.describe()}`);
      }
      expectAtt.set(id, { [ODD_ATT]: data });
      extra++;
    }
  }
  await converge('after creating docs with odd ids', liveCount());
});

await steps.run('update', async () => {
  // PouchDB updates settee-made docs, settee updates PouchDB-made docs, each touching attachments.
  const n = Math.min(60, HALF);
  for (let i = 0; i < n; i++) {
    const doc = await local.get(remoteId(i));
    doc.gen = 2;
    doc.updatedBy = 'local';
    if (i % 10 === 0) {
      const data = bytesFor(doc._id, 2);
      doc._attachments = { ...(doc._attachments || {}),
        'added.txt': { content_type: 'text/plain', data } };
      expectAtt.set(doc._id, { ...(expectAtt.get(doc._id) || {}), 'added.txt': data });
    }
    await local.put(doc);
  }
  for (let i = 0; i < n; i++) {
    const id = localId(i);
    const doc = await remoteDoc(id);
    doc.gen = 2;
    doc.updatedBy = 'remote';
    const rev = await remotePut(doc);
    if (i % 10 === 0) { // replace the attachment PouchDB made, standalone
      const data = bytesFor(id, 3);
      const put = await http(base, 'PUT', `${dbPath}/${id}/note.txt?rev=${rev}`, data,
        { 'Content-Type': 'text/plain' });
      assert(put.status === 201, `standalone attachment replace: ${put.describe()}`);
      expectAtt.set(id, { 'note.txt': data });
    }
  }
  await converge('after updates', liveCount());
});

await steps.run('delete', async () => {
  const n = Math.min(25, HALF / 4);
  for (let i = HALF - n; i < HALF; i++) { // PouchDB deletes settee-made docs
    const doc = await local.get(remoteId(i));
    await local.remove(doc);
    expectDeleted.add(remoteId(i));
  }
  for (let i = HALF - n; i < HALF; i++) { // settee deletes PouchDB-made docs
    const id = localId(i);
    const doc = await remoteDoc(id);
    const res = await http(base, 'DELETE', `${dbPath}/${id}?rev=${doc._rev}`);
    assert(res.status === 200, `settee ${res.describe()}`);
    expectDeleted.add(id);
  }
  // and a standalone attachment DELETE on settee for a PouchDB-made doc
  const attId = localId(HALF - n - 5 - ((HALF - n - 5) % 5));
  if (expectAtt.has(attId)) {
    const doc = await remoteDoc(attId);
    const res = await http(base, 'DELETE', `${dbPath}/${attId}/note.txt?rev=${doc._rev}`);
    assert(res.status === 200, `settee attachment DELETE: ${res.describe()}`);
    expectAtt.delete(attId);
  }
  await converge('after deletes', liveCount());
  for (const id of expectDeleted) {
    const res = await http(base, 'GET', `${dbPath}/${id}`);
    assertEqual([res.status, res.body && res.body.reason], [404, 'deleted'], `settee GET ${id}`);
    let status;
    try { await local.get(id); status = 200; } catch (err) { status = err.status; }
    assertEqual(status, 404, `PouchDB get(${id})`);
  }
});

const conflictDocs = { local: [], remote: [] }; // which side's edit must win
const branchAtts = new Map(); // id -> bytes of the attachment only the losing branch has

await steps.run('conflicts', async () => {
  await stopSync(); // both sides edit offline, then sync again
  const n = Math.min(20, HALF / 10);
  for (let i = 100; i < 100 + n; i++) {
    // local wins: PouchDB edits twice (deeper branch), settee once; and the other way round
    for (const [id, winner] of [[localId(i), 'local'], [remoteId(i), 'remote']]) {
      conflictDocs[winner].push(id);
      const ldoc = await local.get(id);
      const rdoc = await remoteDoc(id);
      assertEqual(ldoc._rev, rdoc._rev, `${id} before the offline edits`);
      const localEdits = winner === 'local' ? 2 : 1;
      const remoteEdits = winner === 'remote' ? 2 : 1;
      // the first two losing branches each way carry a new attachment of their own
      const branchAtt = i < 102 ? bytesFor(`${id} losing branch`, i) : null;
      let lcur = ldoc;
      for (let k = 0; k < localEdits; k++) {
        const body = { ...lcur, edit: `local-${k}`, by: 'local' };
        if (branchAtt && winner === 'remote') {
          body._attachments = { ...(lcur._attachments || {}),
            'branch.txt': { content_type: 'text/plain', data: branchAtt } };
        }
        const res = await local.put(body);
        lcur = { ...lcur, _rev: res.rev };
      }
      let rcur = rdoc;
      for (let k = 0; k < remoteEdits; k++) {
        const body = { ...rcur, edit: `remote-${k}`, by: 'remote' };
        if (branchAtt && winner === 'local') { // inline base64 in a PUT, next to the stubs
          body._attachments = { ...(rcur._attachments || {}),
            'branch.txt': { content_type: 'text/plain', data: branchAtt.toString('base64') } };
        }
        const rev = await remotePut(body);
        rcur = { ...rcur, _rev: rev };
      }
      if (branchAtt) branchAtts.set(id, branchAtt);
    }
  }
  sync = startSync();
  await converge('after conflicting offline edits', liveCount());
  // the restarted sync resumed from its checkpoints (`_local` docs on both sides), not from 0
  assert(events.read.push <= 4 * n && events.read.pull <= 4 * n,
    `the restarted sync re-read ${JSON.stringify(events.read)} docs for ${4 * n} offline edits`);
  for (const [winner, ids] of Object.entries(conflictDocs)) {
    for (const id of ids) {
      const ldoc = await local.get(id, { conflicts: true });
      const rdoc = await remoteDoc(id, '?conflicts=true');
      assertEqual(ldoc.by, winner, `PouchDB winner of ${id}`);
      assertEqual(rdoc.by, winner, `settee winner of ${id}`);
      assertEqual(rdoc._rev, ldoc._rev, `winning rev of ${id} (settee vs PouchDB)`);
      assert((ldoc._conflicts || []).length === 1, `PouchDB _conflicts of ${id}: ${JSON.stringify(ldoc._conflicts)}`);
      assertEqual(rdoc._conflicts, ldoc._conflicts, `_conflicts of ${id} (settee vs PouchDB)`);
      const gen = Number(ldoc._rev.split('-')[0]);
      assertEqual(Number(ldoc._conflicts[0].split('-')[0]), gen - 1, `losing rev generation of ${id}`);
      const branch = branchAtts.get(id);
      if (branch) { // the losing rev's own attachment reached the other side intact
        const loser = ldoc._conflicts[0];
        const lbytes = await local.getAttachment(id, 'branch.txt', { rev: loser });
        const res = await http(base, 'GET', `${dbPath}/${id}/branch.txt?rev=${loser}`);
        assert(res.status === 200, `settee ${res.describe()}`);
        assert(Buffer.compare(lbytes, branch) === 0, `PouchDB bytes of ${id}/branch.txt at ${loser} differ`);
        assert(Buffer.compare(res.raw, branch) === 0, `settee bytes of ${id}/branch.txt at ${loser} differ`);
        assert(!rdoc._attachments || !rdoc._attachments['branch.txt'], `the winner of ${id} has branch.txt`);
      }
    }
  }
});

await steps.run('resolve', async () => {
  // Resolve half the conflicts on each side by deleting the losing rev; the other side follows.
  const ids = [...conflictDocs.local, ...conflictDocs.remote];
  for (const [k, id] of ids.entries()) {
    if (k % 2 === 0) {
      const doc = await local.get(id, { conflicts: true });
      await local.remove(id, doc._conflicts[0]);
    } else {
      const doc = await remoteDoc(id, '?conflicts=true');
      const res = await http(base, 'DELETE', `${dbPath}/${id}?rev=${doc._conflicts[0]}`);
      assert(res.status === 200, `settee delete of the losing rev: ${res.describe()}`);
    }
  }
  await converge('after resolving the conflicts', liveCount());
  for (const id of ids) {
    const ldoc = await local.get(id, { conflicts: true });
    const rdoc = await remoteDoc(id, '?conflicts=true');
    assert(!ldoc._conflicts, `PouchDB still has _conflicts on ${id}: ${JSON.stringify(ldoc._conflicts)}`);
    assert(!rdoc._conflicts, `settee still has _conflicts on ${id}: ${JSON.stringify(rdoc._conflicts)}`);
    // the whole tree agrees: deleted leaves, the winner's history, every leaf
    // (PouchDB has no `deleted_conflicts` option: its deleted leaves come from open_revs=all)
    const lfull = await local.get(id, { revs: true });
    const rfull = await remoteDoc(id, '?deleted_conflicts=true&revs=true');
    assertEqual(rfull._revisions, lfull._revisions, `_revisions of ${id} (settee vs PouchDB)`);
    const lopen = await local.get(id, { open_revs: 'all' });
    const lleaves = lopen.map((r) => r.ok._rev).sort();
    const ldeleted = lopen.filter((r) => r.ok._deleted).map((r) => r.ok._rev).sort();
    assertEqual(ldeleted.length, 1, `PouchDB deleted leaves of ${id}`);
    assertEqual(rfull._deleted_conflicts, ldeleted, `settee _deleted_conflicts vs PouchDB deleted leaves of ${id}`);
    const rleaves = await http(base, 'GET', `${dbPath}/${id}?open_revs=all`, undefined, { Accept: 'application/json' });
    assert(rleaves.status === 200 && Array.isArray(rleaves.body), `settee ${rleaves.describe()}`);
    assertEqual(rleaves.body.map((r) => r.ok._rev).sort(), lleaves, `open_revs=all leaves of ${id}`);
  }
});

await steps.run('attachments', async () => {
  for (const [id, atts] of expectAtt) {
    if (expectDeleted.has(id)) continue;
    const ldoc = await local.get(id);
    const rdoc = await remoteDoc(id);
    assertEqual(Object.keys(rdoc._attachments || {}).sort(), Object.keys(atts).sort(),
      `settee attachment names of ${id}`);
    assertEqual(Object.keys(ldoc._attachments || {}).sort(), Object.keys(atts).sort(),
      `PouchDB attachment names of ${id}`);
    for (const [name, data] of Object.entries(atts)) {
      const lbytes = await local.getAttachment(id, name);
      const res = await http(base, 'GET', `${dbPath}/${encodeURIComponent(id)}/${name.split('/').map(encodeURIComponent).join('/')}`);
      assert(res.status === 200, `settee ${res.describe()}`);
      assert(Buffer.compare(lbytes, data) === 0, `PouchDB bytes of ${id}/${name} differ`);
      assert(Buffer.compare(res.raw, data) === 0, `settee bytes of ${id}/${name} differ`);
      assertEqual(rdoc._attachments[name].digest, md5Digest(data), `settee digest of ${id}/${name}`);
      assertEqual(ldoc._attachments[name].digest, md5Digest(data), `PouchDB digest of ${id}/${name}`);
    }
  }
});

await steps.run('final', async () => {
  const diff = await differences(liveCount());
  assert(diff === null, diff);
  await stopSync();
  assert(!events.denied.length && !events.errors.length, `sync events: ${eventTrouble()}`);
  const linfo = await local.info();
  const rinfo = await remote.info();
  assertEqual(rinfo.doc_count, liveCount(), 'settee doc_count');
  assertEqual(linfo.doc_count, liveCount(), 'PouchDB doc_count');
  console.log(`sync delivered ${events.changes} change batches; ${linfo.doc_count} docs on each side`);
});

await stopSync();
steps.finish();
