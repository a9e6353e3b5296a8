// PouchDB 9's HTTP adapter used directly as a CouchDB client of settee:
// `node pouchdb_http.mjs URL DB`.
//
// bulkDocs/allDocs/get/put/remove, bulkGet/revsDiff, putAttachment/getAttachment/
// removeAttachment, a live changes feed (PouchDB long-polls), query (views through
// pouchdb-mapreduce; SKIPPED when settee answers 501 not_implemented), multi-megabyte attachments
// pushed and pulled by replication, and destroy.  Exits 1 with `STEP ... FAILED` lines on any
// mismatch.

import PouchDB from 'pouchdb-core';
import HttpAdapter from 'pouchdb-adapter-http';
import MemoryAdapter from 'pouchdb-adapter-memory';
import Replication from 'pouchdb-replication';
import MapReduce from 'pouchdb-mapreduce';
import { Buffer } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import { Skip, Steps, assert, assertEqual, http, parseArgs, sleep } from './lib.mjs';

PouchDB.plugin(HttpAdapter).plugin(MemoryAdapter).plugin(Replication).plugin(MapReduce);

const opts = parseArgs(process.argv.slice(2), ['url', 'db']);
const steps = new Steps(opts);
const remote = new PouchDB(`${opts.url}/${encodeURIComponent(opts.db)}`);
const md5 = (buf) => 'md5-' + createHash('md5').update(buf).digest('base64');

async function statusOf(promise) {
  try { await promise; return 200; } catch (err) { return err.status; }
}

await steps.run('crud', async () => {
  const info = await remote.info(); // creates the db (PouchDB's setup)
  assertEqual([info.db_name, info.doc_count], [opts.db, 0], 'remote.info');
  const docs = Array.from({ length: 50 }, (_, i) => ({ _id: `d${String(i).padStart(2, '0')}`, i }));
  const res = await remote.bulkDocs(docs);
  assert(res.length === 50 && res.every((r) => r.ok), `bulkDocs: ${JSON.stringify(res.slice(0, 2))}`);
  const all = await remote.allDocs({ keys: ['d03', 'd01', 'zz'], include_docs: true });
  assertEqual(all.rows.map((r) => (r.doc ? r.doc.i : r.error)), [3, 1, 'not_found'], 'allDocs keys');
  const range = await remote.allDocs({ startkey: 'd10', endkey: 'd13', inclusive_end: false });
  assertEqual(range.rows.map((r) => r.id), ['d10', 'd11', 'd12'], 'allDocs startkey/endkey');
  const doc = await remote.get('d05');
  const put = await remote.put({ ...doc, changed: true });
  assert(put.ok && put.rev.startsWith('2-'), `put: ${JSON.stringify(put)}`);
  assertEqual(await statusOf(remote.put({ ...doc, again: true })), 409, 'put with a stale rev');
  const withInfo = await remote.get('d05', { revs_info: true, revs: true });
  assertEqual(withInfo._revisions.start, 2, 'get revs');
  assertEqual(withInfo._revs_info.length, 2, 'get revs_info');
  const removed = await remote.remove(withInfo._id, withInfo._rev);
  assert(removed.ok, `remove: ${JSON.stringify(removed)}`);
  assertEqual(await statusOf(remote.get('d05')), 404, 'get of a removed doc');
  const post = await remote.post({ made: 'by post' });
  assert(post.ok && post.id, `post: ${JSON.stringify(post)}`);
});

await steps.run('bulkget-revsdiff', async () => {
  const d1 = await remote.get('d01');
  const got = await remote.bulkGet({ docs: [{ id: 'd01', rev: d1._rev }, { id: 'd02' }, { id: 'nope' }], revs: true });
  assertEqual(got.results.map((r) => r.id), ['d01', 'd02', 'nope'], 'bulkGet ids');
  assertEqual(got.results[0].docs[0].ok._revisions.ids.length, 1, 'bulkGet revs');
  assert(got.results[2].docs[0].error, `bulkGet of a missing doc: ${JSON.stringify(got.results[2])}`);
  const diff = await remote.revsDiff({ d01: [d1._rev, '2-ffffffffffffffffffffffffffffffff'], nope: ['1-abc'] });
  assertEqual(diff, { d01: { missing: ['2-ffffffffffffffffffffffffffffffff'], possible_ancestors: [d1._rev] },
    nope: { missing: ['1-abc'] } }, 'revsDiff');
});

await steps.run('attachments', async () => {
  const data = randomBytes(70000);
  const res = await remote.putAttachment('att', 'blob.bin', data, 'application/octet-stream');
  assert(res.ok, `putAttachment on a new doc: ${JSON.stringify(res)}`);
  const res2 = await remote.putAttachment('att', 'note.txt', res.rev, Buffer.from('hi'), 'text/plain');
  const got = await remote.getAttachment('att', 'blob.bin');
  assert(Buffer.isBuffer(got) && got.equals(data), `getAttachment: ${got.length} bytes`);
  const doc = await remote.get('att', { attachments: true, binary: true });
  assert(doc._attachments['blob.bin'].data.equals(data), 'get attachments+binary');
  assertEqual(doc._attachments['blob.bin'].digest, md5(data), 'digest');
  const stubs = await remote.get('att');
  assertEqual([stubs._attachments['note.txt'].stub, stubs._attachments['note.txt'].length], [true, 2], 'stub');
  const rm = await remote.removeAttachment('att', 'blob.bin', res2.rev);
  assert(rm.ok, `removeAttachment: ${JSON.stringify(rm)}`);
  assertEqual(await statusOf(remote.getAttachment('att', 'blob.bin')), 404, 'getAttachment after remove');
});

await steps.run('changes-live', async () => {
  const seen = [];
  const feed = remote.changes({ live: true, since: 'now', include_docs: true, heartbeat: 1000 });
  feed.on('change', (c) => seen.push(c));
  let error = null;
  feed.on('error', (e) => { error = e; });
  await sleep(300);
  await remote.put({ _id: 'live-a', v: 1 });
  await remote.put({ _id: 'live-b', v: 2 });
  const t0 = Date.now();
  while (seen.length < 2 && Date.now() - t0 < 5000 && !error) await sleep(20);
  feed.cancel();
  assert(!error, `changes error: ${error}`);
  assertEqual(seen.map((c) => [c.id, c.doc.v]), [['live-a', 1], ['live-b', 2]], 'live changes');
  const normal = await remote.changes({ since: 0, limit: 5 });
  assertEqual(normal.results.length, 5, 'changes limit');
  const filtered = await remote.changes({ doc_ids: ['d01', 'd02'] });
  assertEqual(filtered.results.map((r) => r.id).sort(), ['d01', 'd02'], 'changes doc_ids');
  const selected = await remote.changes({ selector: { i: { $gte: 48 } } });
  assertEqual(selected.results.map((r) => r.id).sort(), ['d48', 'd49'], 'changes selector');
});

await steps.run('query', async () => {
  const probe = await http(opts.url, 'GET', `/${encodeURIComponent(opts.db)}/_design/x/_view/y`);
  if (probe.status === 501 && probe.body && probe.body.error === 'not_implemented') {
    console.log('STEP query SKIPPED: GET /db/_design/x/_view/y answers 501 not_implemented (views unfinished)');
    throw new Skip();
  }
  await remote.put({ _id: '_design/q', views: { by_i: { map: 'function (doc) { if (typeof doc.i === "number") emit(doc.i % 3, doc.i); }', reduce: '_stats' } } });
  const rows = await remote.query('q/by_i', { reduce: false, key: 0, limit: 3 });
  assertEqual(rows.rows.map((r) => r.value), [0, 3, 6], 'query key/limit');
  const grouped = await remote.query('q/by_i', { group: true });
  assertEqual(grouped.rows.map((r) => [r.key, r.value.count]), [[0, 17], [1, 17], [2, 15]], 'query _stats group (d05 removed)');
  const keys = await remote.query('q/by_i', { keys: [2, 1], reduce: false, limit: 100 });
  assertEqual(keys.rows[0].key, 2, 'query keys order');
});

await steps.run('big-attachments', async () => {
  // 3 MB attachments: pushed inline base64 in _bulk_docs by replication, pulled back per attachment
  const local = new PouchDB(`big-${Date.now()}`, { adapter: 'memory' });
  const blobs = [randomBytes(3 * 1024 * 1024), randomBytes(1024 * 1024 + 7)];
  await local.put({ _id: 'big', _attachments: {
    'a.bin': { content_type: 'application/octet-stream', data: blobs[0] },
    'b.bin': { content_type: 'application/octet-stream', data: blobs[1] } } });
  const push = await local.replicate.to(remote);
  assert(push.ok && push.docs_written === 1, `push: ${JSON.stringify({ ...push, docs: undefined })}`);
  const back = new PouchDB(`back-${Date.now()}`, { adapter: 'memory' });
  const pull = await back.replicate.from(remote, { doc_ids: ['big'] });
  assert(pull.ok && pull.docs_written === 1, `pull: ${JSON.stringify({ ...pull, docs: undefined })}`);
  for (const [k, name] of ['a.bin', 'b.bin'].entries()) {
    const onServer = await remote.getAttachment('big', name);
    assert(onServer.equals(blobs[k]), `settee bytes of ${name} differ (${onServer.length} bytes)`);
    const pulled = await back.getAttachment('big', name);
    assert(pulled.equals(blobs[k]), `pulled bytes of ${name} differ (${pulled.length} bytes)`);
  }
});

await steps.run('destroy', async () => {
  const res = await remote.destroy();
  assert(res.ok, `destroy: ${JSON.stringify(res)}`);
  const after = await http(opts.url, 'GET', `/${encodeURIComponent(opts.db)}`);
  assertEqual(after.status, 404, 'GET /db after destroy');
});

steps.finish();
