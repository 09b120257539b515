#!/usr/bin/env node
// Publishes GenerationRequests to <prefix>.requests and (optionally) waits for their
// AssetCompleted events on <prefix>.completed.
//
// Wire format: Avro single-object encoding, i.e.
//   C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
//           Parsing Canonical Form | Avro binary body
// avsc writes the body and gives the Parsing Canonical Form (type.schema()); its own
// fingerprint() only offers crypto hashes (md5, sha256), so CRC-64-AVRO is implemented below.
//
//   node producer.js --bootstrap 127.0.0.1:9092 --prefix assetline --run demo1 \
//       --count 5 --kind TEXT [--await 60] [--schemas ../../../schemas]
//   node producer.js --fingerprint ../../../schemas/*.avsc
//
// stdout carries only data (one request id per line, then one completion per line with
// --await); kafkajs logs go to stderr.
//
// Without --run the ids get a random part, so two runs never share ids. With --await, a
// completion counts only if it is for what this run asked (kind, tenant, campaign,
// idempotency key): a request id another producer used first completes with *its* result.
// Exit codes: 0 all DELIVERED, 3 timed out, 4 some not DELIVERED or not ours.
'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const avro = require('avsc');
const { Kafka, Partitioners, logLevel } = require('kafkajs');

const MAGIC = Buffer.from([0xc3, 0x01]);

// CRC-64-AVRO (a Rabin fingerprint), exactly as in the Avro specification's reference code.
// BigInt because the arithmetic is on unsigned 64-bit values.
const EMPTY = 0xc15d213aa4d7a795n;
const MASK = 0xffffffffffffffffn;
const FP_TABLE = Array.from({ length: 256 }, (_, i) => {
  let fp = BigInt(i);
  for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (EMPTY & (-(fp & 1n) & MASK));
  return fp;
});

function crc64Avro(bytes) {
  let fp = EMPTY;
  for (const b of bytes) fp = (fp >> 8n) ^ FP_TABLE[Number((fp ^ BigInt(b)) & 0xffn)];
  return fp;
}

/** The 8 fingerprint bytes as written on the wire (little-endian). */
function fingerprint(type) {
  // type.schema() without exportAttrs is the Parsing Canonical Form: full names, no doc,
  // defaults or logicalType, attributes in the spec's order.
  const canonical = JSON.stringify(type.schema());
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(crc64Avro(Buffer.from(canonical, 'utf8')));
  return out;
}

function loadType(file) {
  return avro.Type.forSchema(JSON.parse(fs.readFileSync(file, 'utf8')));
}

/** Encoder and decoder for one schema; the header is computed once. */
function singleObjectCodec(type) {
  const header = Buffer.concat([MAGIC, fingerprint(type)]);
  return {
    encode: (value) => Buffer.concat([header, type.toBuffer(value)]),
    // Returns undefined for messages written with another schema (or not single-object at all).
    // To read older writer versions, keep their types by fingerprint and decode with
    // type.createResolver(writerType).
    decode: (buf) =>
      buf && buf.length >= header.length && header.equals(buf.subarray(0, header.length))
        ? type.fromBuffer(buf.subarray(header.length)) // throws on trailing bytes
        : undefined,
  };
}

function buildRequests({ run, count, kind, tenant, campaign }) {
  // Every Constraints field defaults to null (= no constraint); set only what applies.
  const constraints = {};
  if (kind === 'IMAGE') Object.assign(constraints, { width: 256, height: 192, format: 'png' });
  if (kind === 'TEXT') constraints.max_chars = 120;
  return Array.from({ length: count }, (_, i) => {
    const requestId = `${run}-${String(i).padStart(5, '0')}`;
    // avsc fills fields that have a schema default when they are left undefined (variables,
    // metadata, attempt, feedback, ...); unions of null and one type take the plain value.
    return {
      request_id: requestId,
      // A real service uses its own stable key for the intent (e.g. an order id); the
      // completion carries it back so resubmissions can be matched to results.
      idempotency_key: requestId,
      tenant,
      campaign_id: campaign,
      kind,
      prompt_template: 'Headline for ${persona} in ${locale}',
      variables: { persona: `persona-${i % 3}`, locale: 'en-GB' },
      model: {}, // all-null ModelSpec: the line's routing config picks the default alias
      constraints,
      created_at: Date.now(), // timestamp-millis is a plain long on the wire
    };
  });
}

async function produce(kafka, topic, codec, requests) {
  // DefaultPartitioner is murmur2 like the Java client's, so a key lands where it would from
  // any other producer. Idempotence needs one in-flight request and acks from all replicas.
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  try {
    await producer.send({
      topic,
      acks: -1,
      // The key is the request id: the line keys every topic by it.
      messages: requests.map((r) => ({ key: r.request_id, value: codec.encode(r) })),
    });
  } finally {
    await producer.disconnect();
  }
  return requests.map((r) => r.request_id);
}

/** What differs between a completion and the request it should answer (empty: it is ours). */
function mismatches(request, completed) {
  const fields = ['kind', 'tenant', 'campaign_id', 'idempotency_key'];
  return fields
    .filter((f) => completed[f] !== request[f])
    .map((f) => `${f} ${JSON.stringify(completed[f])} (asked ${JSON.stringify(request[f])})`);
}

/**
 * Reads .completed from the beginning and prints "<request_id> <status> <location or reasons>"
 * for each wanted id. kafkajs has no group-less assign(), so a throwaway group id is used.
 * Returns { timedOut, failed }: failed counts completions not DELIVERED or not for our request.
 */
async function awaitCompletions(kafka, topic, codec, requests, timeoutMs) {
  const wanted = new Map(requests.map((r) => [r.request_id, r]));
  let failed = 0;
  const consumer = kafka.consumer({ groupId: `assetline-example-${crypto.randomUUID()}` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let finish;
    const done = new Promise((resolve) => (finish = resolve));
    const timer = setTimeout(finish, timeoutMs);
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        let completed;
        try {
          completed = codec.decode(message.value);
        } catch (err) {
          console.error(`skipping undecodable completion: ${err.message}`);
          return;
        }
        const request = completed && wanted.get(completed.request_id);
        if (!request) return;
        wanted.delete(completed.request_id);
        const wrong = mismatches(request, completed);
        if (wrong.length > 0) {
          // The line keeps one completion per request id: ours was dropped as a duplicate.
          failed += 1;
          console.error(
            `${completed.request_id} completed for another request: ${wrong.join(', ')}; ` +
              'its id was used before, choose another --run');
        } else {
          if (completed.status !== 'DELIVERED') failed += 1;
          const detail = completed.location ?? JSON.stringify(completed.reasons);
          process.stdout.write(`${completed.request_id} ${completed.status} ${detail}\n`);
        }
        if (wanted.size === 0) finish();
      },
    });
    await done;
    clearTimeout(timer);
  } finally {
    await consumer.disconnect();
  }
  return { timedOut: wanted.size > 0, failed };
}

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) {
      throw new Error(`expected --name value pairs, got: ${argv[i]}`);
    }
    args[argv[i].slice(2)] = argv[i + 1];
  }
  return args;
}

async function main(argv) {
  if (argv[0] === '--fingerprint') {
    // "<hex> <file>" per schema, so tests can compare with the Python line's fingerprint.
    for (const file of argv.slice(1)) {
      console.log(`${fingerprint(loadType(file)).toString('hex')} ${path.basename(file)}`);
    }
    return 0;
  }
  const args = parseArgs(argv);
  const schemas = args.schemas ?? 'schemas';
  const prefix = args.prefix ?? 'assetline';
  const kafka = new Kafka({
    clientId: 'assetline-node-example',
    brokers: (args.bootstrap ?? '127.0.0.1:9092').split(','),
    logLevel: logLevel.WARN, // kafkajs' console logger writes WARN and ERROR to stderr
  });

  const requestCodec = singleObjectCodec(loadType(path.join(schemas, 'generation_request.avsc')));
  const requests = buildRequests({
    run: args.run ?? `${Date.now()}-${crypto.randomBytes(4).toString('hex')}`,
    count: Number(args.count ?? 5),
    kind: args.kind ?? 'TEXT',
    tenant: args.tenant ?? 'acme',
    campaign: args.campaign ?? 'node-example',
  });
  const ids = await produce(kafka, `${prefix}.requests`, requestCodec, requests);
  for (const id of ids) process.stdout.write(`${id}\n`);

  if (args.await !== undefined) {
    const completedCodec = singleObjectCodec(loadType(path.join(schemas, 'asset_completed.avsc')));
    const { timedOut, failed } = await awaitCompletions(
      kafka, `${prefix}.completed`, completedCodec, requests, Number(args.await) * 1000);
    if (failed > 0) {
      console.error(`${failed} of ${ids.length} request(s) not DELIVERED as asked`);
      return 4;
    }
    if (timedOut) {
      console.error('timed out waiting for completions');
      return 3;
    }
  }
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}

module.exports = { crc64Avro, fingerprint, singleObjectCodec, buildRequests, mismatches };
