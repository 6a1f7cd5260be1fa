'use strict';
// A BullMQ Worker (concurrency 1) until SIGTERM. What a job does comes from its data:
//   {hangOn: "node"}  never finishes (the test kills this process)
//   {failTimes: n}    throws while attemptsMade < n, then succeeds
//   {fail: "text"}    always throws Error("text")
//   otherwise         returns {by: "node", name, data}
// Env: WORKER_LOCK_MS, WORKER_STALLED_MS, WORKER_MAX_STALLED (BullMQ's defaults otherwise).
// Prints {"ready": true}, then {"event": "active"|"completed"|"failed"|"stalled"|"error", ...}.
const { Worker } = require('bullmq');
const { settings, emit, die, closeOnSignal } = require('./common');

const OPTIONS_FROM_ENV = {
  lockDuration: 'WORKER_LOCK_MS',
  stalledInterval: 'WORKER_STALLED_MS',
  maxStalledCount: 'WORKER_MAX_STALLED',
};

async function processJob(job) {
  emit({
    event: 'active',
    id: job.id,
    name: job.name,
    attemptsMade: job.attemptsMade,
    attemptsStarted: job.attemptsStarted,
    stalledCounter: job.stalledCounter,
    processedOn: job.processedOn,
  });
  const data = job.data || {};
  if (data.hangOn === 'node') return new Promise(() => {});
  if (data.failTimes !== undefined && job.attemptsMade < data.failTimes) {
    throw new Error(`planned failure ${job.attemptsMade + 1}`);
  }
  if (data.fail !== undefined) throw new Error(data.fail);
  return { by: 'node', name: job.name, data };
}

async function main() {
  const { connection, name, prefix } = settings();
  const opts = { connection, prefix, concurrency: 1 };
  for (const [option, key] of Object.entries(OPTIONS_FROM_ENV)) {
    if (process.env[key]) opts[option] = Number(process.env[key]);
  }
  const worker = new Worker(name, processJob, opts);
  worker.on('completed', (job, result) => emit({ event: 'completed', id: job.id, result }));
  worker.on('failed', (job, err) =>
    emit({ event: 'failed', id: job && job.id, reason: err.message, attemptsMade: job && job.attemptsMade }),
  );
  worker.on('stalled', (id) => emit({ event: 'stalled', id }));
  worker.on('error', (err) => emit({ event: 'error', message: String(err && err.message) }));
  closeOnSignal(() => worker.close(true));
  await worker.waitUntilReady();
  emit({ ready: true });
}

main().catch(die);
