'use strict';
// A Node client of group-service: @grpc/grpc-js with the protos loaded by @grpc/proto-loader,
// once with the settings most Node code uses (`longs: Number`) and once with the loader's
// defaults (int64 as Long, camelCase fields). It starts the server binary on a free port over
// a temporary data dir (SQLite, or a fresh PostgreSQL database made with createdb and dropped
// afterwards), mints tokens with `group-service token`, and checks that group ids read from a
// group's name and from int64 fields name the same group exactly.
//
//   npm ci --prefix tests/clients/node
//   node tests/clients/node/scenario.js target/debug/group-service [postgres://.../postgres]
//
// Exits non-zero, with the server's log, when anything fails.

const assert = require('node:assert/strict');
const childProcess = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = path.resolve(__dirname, '../../../proto');
const PROTOS = ['groups/v1/directory.proto', 'groups/v1/groups.proto', 'groups/v1/membership.proto'];
const MAX_SAFE = 2n ** 53n;
const ADMIN = 7;
const LEE = 8;
const CHOI = 9;

// The loader settings: what most Node code passes, and the defaults. Each runs in a tenant of
// its own on the same server.
const SETTINGS = [
  {
    what: 'longs: Number',
    tenant: 1,
    options: { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true },
  },
  { what: 'the defaults', tenant: 2, options: {} },
];

const camel = (name) => name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());

// `value` with its keys in the loader's case (camelCase unless keepCase).
function keys(value, keepCase) {
  if (keepCase || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => keys(v, keepCase));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [camel(k), keys(v, keepCase)]));
}

// An int64 as the loader hands it over: a Number (longs: Number) or a Long (the defaults).
function int64Text(value, settings) {
  if (settings.options.longs === Number) {
    assert.equal(typeof value, 'number', `int64 as a Number: ${value}`);
    assert.ok(Number.isSafeInteger(value), `${value} is not a safe integer`);
  } else {
    assert.ok(value && typeof value.low === 'number', `int64 as a Long: ${value}`);
  }
  return value.toString();
}

// The id of `tenants/T/groups/ID`, as the decimal text and as the Number a client makes of it.
function idOfName(name) {
  const match = /^tenants\/\d+\/groups\/(\d+)$/.exec(name);
  assert.ok(match, `${name} is tenants/T/groups/ID`);
  const text = match[1];
  assert.ok(BigInt(text) < MAX_SAFE, `${text} is not below 2^53`);
  const number = Number(text);
  assert.equal(String(number), text, `${text} does not survive Number()`);
  return { text, number };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The server binary on a free port over a temporary data dir and, with `adminUrl`, a fresh
// PostgreSQL database. `stop()` ends it and removes what it made.
async function startServer(bin, adminUrl) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gs-node-client-'));
  const data = path.join(work, 'data');
  fs.mkdirSync(data);
  const logPath = path.join(work, 'server.log');
  const args = [];
  let database = null;
  if (adminUrl) {
    database = `gs_node_client_${process.pid}`;
    childProcess.execFileSync('createdb', ['--maintenance-db', adminUrl, database]);
    const url = new URL(adminUrl);
    url.pathname = `/${database}`;
    args.push('--database-url', url.toString());
  }
  const port = await freePort();
  const log = fs.openSync(logPath, 'w');
  const child = childProcess.spawn(
    bin,
    ['--listen', `127.0.0.1:${port}`, '--data-dir', data, ...args, 'serve'],
    { stdio: ['ignore', log, log] },
  );
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const server = {
    target: `127.0.0.1:${port}`,
    log: () => fs.readFileSync(logPath, 'utf8'),
    token: (tenant, ...who) =>
      childProcess
        .execFileSync(bin, ['--data-dir', data, 'token', '--tenant', String(tenant), ...who])
        .toString()
        .trim(),
    async stop() {
      if (!exited) {
        const gone = new Promise((resolve) => child.on('exit', resolve));
        child.kill('SIGTERM');
        await gone;
      }
      fs.closeSync(log);
      if (database) {
        childProcess.execFileSync('dropdb', ['--maintenance-db', adminUrl, '--force', database]);
      }
      fs.rmSync(work, { recursive: true, force: true });
    },
  };
  // The development secret is written at start: wait for it before minting tokens.
  for (let i = 0; !fs.existsSync(path.join(data, 'jwt-secret')); i += 1) {
    if (exited || i > 300) {
      const why = server.log();
      await server.stop();
      throw new Error(`the server did not start:\n${why}`);
    }
    await sleep(100);
  }
  return server;
}

// Promisified unary calls of a generated client, with a bearer token.
function stub(Client, target, token) {
  const client = new Client(target, grpc.credentials.createInsecure());
  const call = (method, request) =>
    new Promise((resolve, reject) => {
      const metadata = new grpc.Metadata();
      metadata.set('authorization', `Bearer ${token}`);
      const deadline = new Date(Date.now() + 10_000);
      client[method](request, metadata, { deadline }, (err, answer) =>
        err ? reject(new Error(`${method}: ${err.code} ${err.details}`)) : resolve(answer),
      );
    });
  return { client, call };
}

async function scenario(server, settings) {
  const { tenant, options } = settings;
  const keepCase = options.keepCase === true;
  const definition = protoLoader.loadSync(PROTOS, { ...options, includeDirs: [PROTO_DIR] });
  const v1 = grpc.loadPackageDefinition(definition).groups.v1;
  const svc = server.token(tenant, '--service');
  const admin = server.token(tenant, '--user', String(ADMIN), '--admin');
  const directory = stub(v1.DirectoryService, server.target, svc);
  const groups = stub(v1.GroupService, server.target, admin);
  const membership = stub(v1.MembershipService, server.target, admin);
  await new Promise((resolve, reject) =>
    directory.client.waitForReady(Date.now() + 30_000, (err) => (err ? reject(err) : resolve())),
  );
  const call = (service, method, request) => service.call(method, keys(request, keepCase));
  const field = (message, name) => message[keepCase ? name : camel(name)];

  await call(directory, 'UpsertTenant', {
    tenant: {
      id: tenant,
      display_name: `Tenant ${tenant}`,
      plan: 'FREE',
      group_creation: 'ADMINS_ONLY',
      masters_may_manage_settings: true,
      core_enabled: true,
    },
  });
  for (const [id, isAdmin] of [[ADMIN, true], [LEE, false], [CHOI, false]]) {
    await call(directory, 'UpsertUser', {
      user: {
        tenant_id: tenant,
        id,
        email: `user${id}@t${tenant}.example`,
        display_name: `User ${id}`,
        is_admin: isAdmin,
      },
    });
  }

  // Design holds Lee; Design research holds Choi and goes into Design by the id its name gives.
  const create = (name, member) =>
    call(groups, 'CreateGroup', {
      parent: `tenants/${tenant}`,
      group: { display_name: name },
      master_user_ids: [ADMIN],
      members: [{ type: 'USER', id: member }],
    });
  const design = await create('Design', LEE);
  const research = await create('Design research', CHOI);
  const inner = idOfName(research.name);
  idOfName(design.name);
  await call(membership, 'AddMembers', {
    group: design.name,
    members: [{ type: 'GROUP', id: inner.number }],
  });

  // The id in an int64 field of an answer is the same id, exactly.
  const listed = await call(membership, 'ListMembers', { group: design.name });
  const ids = field(listed, 'members').map((m) => int64Text(m.member.id, settings));
  assert.ok(ids.includes(inner.text), `${inner.text} listed among ${ids}`);
  const byField = `tenants/${tenant}/groups/${ids.find((id) => id === inner.text)}`;
  const got = await call(groups, 'GetGroup', { name: byField });
  assert.equal(got.name, research.name);
  assert.equal(field(got, 'display_name'), 'Design research');

  // Choi is a member of Design through Design research; named both ways.
  const check = (group, user) =>
    call(membership, 'CheckMembership', { group, user: { tenant_id: tenant, user_id: user } });
  const viaNesting = await check(design.name, CHOI);
  // (Without `defaults: true` a false bool is left out of the answer.)
  assert.equal(viaNesting.member, true, 'Choi is a member of Design');
  assert.equal(Boolean(viaNesting.direct), false, 'through the nested group');
  const direct = await check(byField, CHOI);
  assert.equal(direct.member && direct.direct, true, 'Choi is a direct member of Design research');
  const notMember = await check(byField, LEE);
  assert.equal(Boolean(notMember.member), false, 'Lee is not a member of Design research');

  for (const s of [directory, groups, membership]) s.client.close();
  console.log(`node client (${settings.what}): group ${inner.text} exact through name and int64`);
}

async function main() {
  const [bin, adminUrl] = process.argv.slice(2);
  if (!bin) throw new Error('usage: node scenario.js SERVER_BINARY [POSTGRES_ADMIN_URL]');
  const server = await startServer(path.resolve(bin), adminUrl);
  try {
    for (const settings of SETTINGS) await scenario(server, settings);
  } catch (err) {
    console.error(`--- server log\n${server.log()}`);
    throw err;
  } finally {
    await server.stop();
  }
  console.log(`node client scenario: ok (${adminUrl ? 'PostgreSQL' : 'SQLite'})`);
}

main().catch((err) => {
  console.error(`node client scenario FAILED: ${err.stack || err}`);
  process.exit(1);
});
