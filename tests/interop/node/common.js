'use strict';
// Shared by the interop scripts: where the queue is (from the environment the Python
// harness sets), a JSON-lines writer, and a plain snapshot of a BullMQ job.
//   JEXKV_INTEROP_REDIS_URL  redis://[user:password@]host:port/db
//   JEXKV_INTEROP_QUEUE      the queue name
//   JEXKV_INTEROP_PREFIX     the key prefix (default "bull")

function settings() {
  const url = new URL(process.env.JEXKV_INTEROP_REDIS_URL);
  const connection = {
    host: url.hostname,
    port: Number(url.port || 6379),
    db: Number(url.pathname.slice(1) || 0),
    maxRetriesPerRequest: null,
  };
  if (url.username) connection.username = decodeURIComponent(url.username);
  if (url.password) connection.password = decodeURIComponent(url.password);
  return {
    connection,
    name: process.env.JEXKV_INTEROP_QUEUE,
    prefix: process.env.JEXKV_INTEROP_PREFIX || 'bull',
  };
}

function emit(record) {
  process.stdout.write(JSON.stringify(record) + '\n');
}

// Exit non-zero with the error on stderr (the harness shows it when a test fails).
function die(err) {
  process.stderr.write(String((err && err.stack) || err) + '\n');
  process.exit(1);
}

async function snapshot(job) {
  if (!job) return null;
  return {
    id: job.id,
    name: job.name,
    data: job.data,
    opts: job.opts,
    state: await job.getState(),
    returnvalue: job.returnvalue === undefined ? null : job.returnvalue,
    failedReason: job.failedReason === undefined ? null : job.failedReason,
    attemptsMade: job.attemptsMade,
    attemptsStarted: job.attemptsStarted,
    stalledCounter: job.stalledCounter,
    timestamp: job.timestamp,
    delay: job.delay,
    priority: job.priority,
    processedOn: job.processedOn === undefined ? null : job.processedOn,
    finishedOn: job.finishedOn === undefined ? null : job.finishedOn,
  };
}

// Run `close` on SIGTERM/SIGINT, then exit 0.
function closeOnSignal(close) {
  const stop = () => close().then(() => process.exit(0), die);
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

module.exports = { settings, emit, die, snapshot, closeOnSignal };
