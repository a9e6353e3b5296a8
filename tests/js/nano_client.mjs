// nano 10 against settee: `node nano_client.mjs URL DBPREFIX [--skip view]`.
//
// Walks nano's db, doc, bulk, view, changes (normal feed, and the changesReader that long-polls)
// and attachment calls, checking each answer against what CouchDB gives.  Every database it makes
// starts with DBPREFIX and is destroyed at the end.  Exits 1 with `STEP ... FAILED: ...` lines on
// any mismatch.

import Nano from 'nano';
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { Skip, Steps, assert, assertEqual, http, parseArgs, sleep } from './lib.mjs';

const opts = parseArgs(process.argv.slice(2), ['url', 'prefix']);
const steps = new Steps(opts);
const nano = Nano(opts.url);
const DB = `${opts.prefix}-main`;
const OTHER = `${opts.prefix}-other`;
const db = nano.use(DB);

async function statusOf(promise) {
  try {
    await promise;
    return 200;
  } catch (err) {
    return err.statusCode;
  }
}

async function errorOf(promise) {
  try {
    const out = await promise;
    return { statusCode: 200, out };
  } catch (err) {
    return { statusCode: err.statusCode, error: err.error, reason: err.reason, message: err.message };
  }
}

await steps.run('db', async () => {
  let res = await nano.db.create(DB);
  assertEqual(res, { ok: true }, 'nano.db.create');
  res = await nano.db.create(OTHER);
  assertEqual(res, { ok: true }, 'nano.db.create (other)');
  const again = await errorOf(nano.db.create(DB));
  assertEqual([again.statusCode, again.error], [412, 'file_exists'], 'nano.db.create of an existing db');
  const info = await nano.db.get(DB);
  assertEqual([info.db_name, info.doc_count, info.doc_del_count], [DB, 0, 0], 'nano.db.get');
  assert(info.update_seq !== undefined && info.sizes, `nano.db.get fields: ${JSON.stringify(info)}`);
  const list = await nano.db.list();
  assert(list.includes(DB) && list.includes(OTHER), `nano.db.list: ${JSON.stringify(list)}`);
  res = await nano.db.destroy(OTHER);
  assertEqual(res, { ok: true }, 'nano.db.destroy');
  const gone = await errorOf(nano.db.get(OTHER));
  assertEqual([gone.statusCode, gone.error], [404, 'not_found'], 'nano.db.get of a destroyed db');
  assert(!(await nano.db.list()).includes(OTHER), 'nano.db.list after destroy');
  const missing = await errorOf(nano.db.destroy(OTHER));
  assertEqual(missing.statusCode, 404, 'nano.db.destroy of a missing db');
  const info2 = await db.info();
  assertEqual(info2.db_name, DB, 'db.info');
});

await steps.run('doc', async () => {
  let res = await db.insert({ _id: 'alpha', kind: 'letter', n: 1 });
  assert(res.ok && res.id === 'alpha' && /^1-[0-9a-f]{32}$/.test(res.rev), `db.insert: ${JSON.stringify(res)}`);
  const rev1 = res.rev;
  res = await db.insert({ kind: 'letter', n: 0 }); // server-generated id via POST
  assert(res.ok && res.id && res.rev, `db.insert without _id: ${JSON.stringify(res)}`);
  const autoId = res.id;
  res = await db.insert({ kind: 'letter', n: 2 }, 'beta'); // id as a parameter
  assertEqual([res.ok, res.id], [true, 'beta'], 'db.insert(doc, docname)');
  let doc = await db.get('alpha');
  assertEqual(doc, { _id: 'alpha', _rev: rev1, kind: 'letter', n: 1 }, 'db.get');
  doc.n = 10;
  res = await db.insert(doc);
  assert(res.rev.startsWith('2-'), `db.insert update: ${JSON.stringify(res)}`);
  const rev2 = res.rev;
  const stale = await errorOf(db.insert({ _id: 'alpha', _rev: rev1, n: 99 }));
  assertEqual([stale.statusCode, stale.error], [409, 'conflict'], 'db.insert with a stale rev');
  doc = await db.get('alpha', { revs_info: true });
  assertEqual(doc._revs_info.map((r) => [r.rev, r.status]), [[rev2, 'available'], [rev1, 'available']],
    'db.get revs_info');
  const old = await db.get('alpha', { rev: rev1 });
  assertEqual(old.n, 1, 'db.get({rev}) of the old rev');
  const head = await db.head('alpha');
  assertEqual(head.etag, `"${rev2}"`, 'db.head etag');
  res = await db.destroy('alpha', rev2);
  assert(res.ok && res.rev.startsWith('3-'), `db.destroy: ${JSON.stringify(res)}`);
  const deleted = await errorOf(db.get('alpha'));
  assertEqual([deleted.statusCode, deleted.error, deleted.reason], [404, 'not_found', 'deleted'],
    'db.get of a deleted doc');
  const never = await errorOf(db.get('never-was'));
  assertEqual([never.statusCode, never.reason], [404, 'missing'], 'db.get of a missing doc');
  assertEqual(await statusOf(db.destroy(autoId, '1-00000000000000000000000000000000')), 409,
    'db.destroy with a wrong rev');
  const list = await db.list();
  assertEqual(list.rows.map((r) => r.id).sort(), [autoId, 'beta'].sort(), 'db.list ids');
});

await steps.run('bulk', async () => {
  const docs = [];
  for (let i = 0; i < 200; i++) docs.push({ _id: `b${String(i).padStart(3, '0')}`, type: i % 2 ? 'odd' : 'even', i });
  let res = await db.bulk({ docs });
  assertEqual(res.length, 200, 'db.bulk result count');
  assert(res.every((r) => r.ok && r.rev.startsWith('1-')), `db.bulk: ${JSON.stringify(res.filter((r) => !r.ok))}`);
  // a mixed batch: one update, one conflict, one delete
  res = await db.bulk({ docs: [
    { _id: 'b000', _rev: res[0].rev, type: 'even', i: 0, touched: true },
    { _id: 'b001', type: 'odd', i: 1 },
    { _id: 'b002', _rev: res[2].rev, _deleted: true },
  ] });
  assert(res[0].ok && res[0].rev.startsWith('2-'), `db.bulk update: ${JSON.stringify(res[0])}`);
  assertEqual([res[1].id, res[1].error], ['b001', 'conflict'], 'db.bulk conflict entry');
  assert(res[2].ok && res[2].rev.startsWith('2-'), `db.bulk delete: ${JSON.stringify(res[2])}`);
  const fetched = await db.fetch({ keys: ['b000', 'b002', 'b003', 'nope'] });
  assertEqual(fetched.rows.map((r) => r.doc ? r.doc.i : r.error || (r.value && r.value.deleted)),
    [0, true, 3, 'not_found'], 'db.fetch rows');
  const revs = await db.fetchRevs({ keys: ['b003', 'b004'] });
  assertEqual(revs.rows.map((r) => r.value.rev.slice(0, 2)), ['1-', '1-'], 'db.fetchRevs');
  const page = await db.list({ startkey: 'b010', limit: 5, include_docs: true });
  assertEqual(page.rows.map((r) => r.doc.i), [10, 11, 12, 13, 14], 'db.list startkey/limit/include_docs');
  const desc = await db.list({ descending: true, startkey: 'b199', limit: 2 });
  assertEqual(desc.rows.map((r) => r.id), ['b199', 'b198'], 'db.list descending');
});

async function viewsAnswer() {
  const res = await http(opts.url, 'GET', `/${DB}/_design/x/_view/y`);
  if (res.status === 501 && res.body && res.body.error === 'not_implemented') return false;
  return true;
}

await steps.run('view', async () => {
  if (!(await viewsAnswer())) {
    console.log('STEP view SKIPPED: GET /db/_design/x/_view/y answers 501 not_implemented ' +
      '(settee views unfinished); nano view calls not tested');
    throw new Skip();
  }
  await db.insert({
    views: {
      by_type: { map: 'function (doc) { if (doc.type) emit(doc.type, doc.i); }', reduce: '_sum' },
      by_i: { map: 'function (doc) { if (doc.type) emit([doc.type, doc.i], null); }' },
      count: { map: 'function (doc) { if (doc.type) emit(doc.i % 10, 1); }', reduce: '_count' },
    },
  }, '_design/stats');
  // b002 was deleted by the bulk step: 199 docs, 100 even minus 1, 99 odd... sums follow
  let res = await db.view('stats', 'by_type', { reduce: false, limit: 3 });
  assertEqual(res.total_rows, 199, 'view total_rows');
  assertEqual(res.rows.map((r) => [r.key, r.value]), [['even', 0], ['even', 4], ['even', 6]],
    'view rows (key order, then doc id order)');
  res = await db.view('stats', 'by_type', { group: true });
  const evenSum = Array.from({ length: 100 }, (_, i) => 2 * i).reduce((a, b) => a + b) - 2;
  const oddSum = Array.from({ length: 100 }, (_, i) => 2 * i + 1).reduce((a, b) => a + b);
  assertEqual(res.rows, [{ key: 'even', value: evenSum }, { key: 'odd', value: oddSum }], 'view group=true _sum');
  res = await db.view('stats', 'by_type');
  assertEqual(res.rows, [{ key: null, value: evenSum + oddSum }], 'view reduce');
  res = await db.view('stats', 'by_type', { keys: ['odd'], reduce: false, include_docs: true, limit: 2 });
  assertEqual(res.rows.map((r) => [r.id, r.doc.i]), [['b001', 1], ['b003', 3]], 'view keys + include_docs');
  res = await db.view('stats', 'by_i', { startkey: ['odd', 195], endkey: ['odd', {}] });
  assertEqual(res.rows.map((r) => r.key), [['odd', 195], ['odd', 197], ['odd', 199]], 'view startkey/endkey');
  res = await db.view('stats', 'by_i', { startkey: ['odd', 5], endkey: ['odd', 9], inclusive_end: false, descending: false });
  assertEqual(res.rows.map((r) => r.key[1]), [5, 7], 'view inclusive_end=false');
  res = await db.view('stats', 'count', { group: true, limit: 3 });
  assertEqual(res.rows, [{ key: 0, value: 20 }, { key: 1, value: 20 }, { key: 2, value: 19 }], 'view _count group');
  res = await db.view('stats', 'by_i', { keys: [['even', 4], ['odd', 5]] }); // POST with keys
  assertEqual(res.rows.map((r) => r.id), ['b004', 'b005'], 'view POST keys');
  const missing = await errorOf(db.view('stats', 'nope'));
  assertEqual(missing.statusCode, 404, 'view that does not exist');
});

await steps.run('changes', async () => {
  let res = await db.changes();
  assert(res.last_seq !== undefined && Array.isArray(res.results), `db.changes shape: ${JSON.stringify(res).slice(0, 200)}`);
  const ids = res.results.map((r) => r.id);
  assertEqual(new Set(ids).size, ids.length, 'db.changes: one row per doc');
  assert(ids.includes('b002') && res.results.find((r) => r.id === 'b002').deleted === true,
    'db.changes marks b002 deleted');
  res = await db.changes({ since: 0, limit: 5, include_docs: true });
  assertEqual(res.results.length, 5, 'db.changes limit');
  assert(res.results.every((r) => r.doc && r.doc._id === r.id && r.changes[0].rev === r.doc._rev),
    `db.changes include_docs: ${JSON.stringify(res.results[0])}`);
  const next = await db.changes({ since: res.last_seq, limit: 5 });
  assert(!next.results.some((r) => res.results.map((x) => x.id).includes(r.id)), 'db.changes since= pages forward');
  const now = await db.changes({ since: 'now' });
  assertEqual(now.results, [], 'db.changes since=now');
  const filtered = await db.changes({ filter: '_doc_ids', doc_ids: JSON.stringify(['b010', 'b011']) });
  assertEqual(filtered.results.map((r) => r.id).sort(), ['b010', 'b011'], 'db.changes filter=_doc_ids');
  const viaServer = await nano.db.changes(DB, { since: 0, limit: 1 });
  assertEqual(viaServer.results.length, 1, 'nano.db.changes');
});

await steps.run('changes-reader', async () => {
  // get(): long-polls from 0 until an empty batch
  const seen = new Set();
  await new Promise((resolve, reject) => {
    const ee = db.changesReader.get({ since: '0', batchSize: 50, timeout: 1000 });
    ee.on('change', (c) => seen.add(c.id));
    ee.on('error', reject);
    ee.on('end', resolve);
  });
  assert(seen.has('b199') && seen.has('beta') && seen.size >= 200, `changesReader.get saw ${seen.size} ids`);
  // start(): long-polls from now; writes made afterwards must arrive
  const arrived = [];
  const errors = [];
  const ee = db.changesReader.start({ since: 'now', timeout: 5000, includeDocs: true });
  ee.on('change', (c) => arrived.push(c));
  ee.on('error', (e) => errors.push(e));
  const ended = new Promise((resolve) => ee.on('end', resolve));
  await sleep(300); // the first long-poll is in flight
  const t0 = Date.now();
  await db.insert({ _id: 'live-1', hello: 1 });
  await db.insert({ _id: 'live-2', hello: 2 });
  while (arrived.length < 2 && Date.now() - t0 < 5000 && !errors.length) await sleep(20);
  db.changesReader.stop();
  await Promise.race([ended, sleep(3000)]);
  assertEqual(errors.map(String), [], 'changesReader.start errors');
  assertEqual(arrived.map((c) => [c.id, c.doc && c.doc.hello]), [['live-1', 1], ['live-2', 2]],
    'changesReader.start delivered the writes made after it started');
  // spool(): everything in one normal request
  const spooled = [];
  await new Promise((resolve, reject) => {
    const sp = db.changesReader.spool({ since: 0 });
    sp.on('batch', (b) => spooled.push(...b));
    sp.on('error', reject);
    sp.on('end', resolve);
  });
  assert(spooled.some((c) => c.id === 'live-2'), `changesReader.spool saw ${spooled.length} changes`);
});

await steps.run('attachments', async () => {
  const data = Buffer.from('Hello, settee!\n'.repeat(100));
  let res = await db.attachment.insert('att-doc', 'hello.txt', data, 'text/plain');
  assert(res.ok && res.id === 'att-doc' && res.rev.startsWith('1-'), `attachment.insert new doc: ${JSON.stringify(res)}`);
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 1, 2, 3, 255, 254]);
  res = await db.attachment.insert('att-doc', 'pic.png', png, 'image/png', { rev: res.rev });
  assert(res.ok && res.rev.startsWith('2-'), `attachment.insert second: ${JSON.stringify(res)}`);
  const rev2 = res.rev;
  const got = await db.attachment.get('att-doc', 'hello.txt');
  assert(Buffer.isBuffer(got) && got.equals(data), `attachment.get text: ${got.length} bytes`);
  const gotPng = await db.attachment.get('att-doc', 'pic.png');
  assert(gotPng.equals(png), 'attachment.get binary bytes');
  const doc = await db.get('att-doc');
  assertEqual(Object.keys(doc._attachments).sort(), ['hello.txt', 'pic.png'], 'stub names');
  const stub = doc._attachments['hello.txt'];
  assertEqual([stub.stub, stub.content_type, stub.length, stub.revpos, stub.digest],
    [true, 'text/plain', data.length, 1, 'md5-' + createHash('md5').update(data).digest('base64')],
    'attachment stub');
  const withData = await db.get('att-doc', { attachments: true });
  assertEqual(Buffer.from(withData._attachments['pic.png'].data, 'base64').toString('hex'), png.toString('hex'),
    'db.get attachments=true base64');
  const stale = await errorOf(db.attachment.insert('att-doc', 'x.txt', Buffer.from('x'), 'text/plain', { rev: doc._rev.replace(/^2-/, '1-') }));
  assertEqual(stale.statusCode, 409, 'attachment.insert with a stale rev');
  res = await db.attachment.destroy('att-doc', 'hello.txt', { rev: rev2 });
  assert(res.ok && res.rev.startsWith('3-'), `attachment.destroy: ${JSON.stringify(res)}`);
  const gone = await errorOf(db.attachment.get('att-doc', 'hello.txt'));
  assertEqual(gone.statusCode, 404, 'attachment.get after destroy');
  const old = await db.attachment.get('att-doc', 'hello.txt', { rev: rev2 });
  assert(old.equals(data), 'attachment.get of an older rev');
  // multipart: nano's multipart.insert sends multipart/related, multipart.get asks for it back
  res = await db.multipart.insert({ _id: 'mp-doc', title: 'multi' },
    [{ name: 'a.txt', data: Buffer.from('aaa'), content_type: 'text/plain' },
      { name: 'b.bin', data: png, content_type: 'application/octet-stream' }], 'mp-doc');
  assert(res.ok && res.rev.startsWith('1-'), `multipart.insert: ${JSON.stringify(res)}`);
  const mp = await db.get('mp-doc', { attachments: true });
  assertEqual([mp.title, Buffer.from(mp._attachments['a.txt'].data, 'base64').toString(),
    Buffer.from(mp._attachments['b.bin'].data, 'base64').toString('hex')], ['multi', 'aaa', png.toString('hex')],
  'multipart.insert stored the doc and both attachments');
  const raw = await db.multipart.get('mp-doc');
  const text = raw.toString('latin1');
  assert(text.includes('"title":"multi"') && text.includes('aaa'), `multipart.get body: ${text.slice(0, 300)}`);
});

await steps.run('server', async () => {
  const info = await nano.info();
  assert(info.couchdb === 'Welcome' && info.uuid && info.version, `nano.info: ${JSON.stringify(info)}`);
  const { uuids } = await nano.uuids(3);
  assert(uuids.length === 3 && new Set(uuids).size === 3 && uuids.every((u) => /^[0-9a-f]{32}$/.test(u)),
    `nano.uuids(3): ${JSON.stringify(uuids)}`);
  const compact = await nano.db.compact(DB);
  assertEqual(compact, { ok: true }, 'nano.db.compact');
  const updates = await nano.updates({ since: 0, limit: 1000 });
  assert(Array.isArray(updates.results), `nano.updates: ${JSON.stringify(updates).slice(0, 200)}`);
  assert(updates.results.some((u) => u.db_name === DB), `nano.updates has no row for ${DB}`);
});

async function replicatorAnswers() {
  const res = await http(opts.url, 'POST', '/_replicate', {});
  return !(res.status === 404 && res.body && res.body.reason === 'Database does not exist.');
}

await steps.run('replicate', async () => {
  if (!(await replicatorAnswers())) {
    console.log('STEP replicate SKIPPED: POST /_replicate answers 404 "Database does not exist." ' +
      '(settee has no server-side replicator yet, issue 5 section 3)');
    throw new Skip();
  }
  const target = `${opts.prefix}-copy`;
  const res = await nano.db.replicate(DB, target, { create_target: true });
  assert(res.ok === true, `nano.db.replicate: ${JSON.stringify(res)}`);
  const [a, b] = await Promise.all([nano.db.get(DB), nano.db.get(target)]);
  assertEqual(b.doc_count, a.doc_count, 'replicated doc_count');
  const mp = await nano.use(target).attachment.get('mp-doc', 'a.txt');
  assertEqual(mp.toString(), 'aaa', 'replicated attachment');
  await nano.db.destroy(target);
});

await steps.run('cleanup', async () => {
  const res = await nano.db.destroy(DB);
  assertEqual(res, { ok: true }, 'nano.db.destroy');
});

steps.finish();
