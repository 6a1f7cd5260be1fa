// The Node BullMQ contender of benchmarks/queue.py (started by benchmarks/_node.py).
//
//   node bench.js --port PORT --db DB --n N --concurrency 4 [--warmup 500]
//
// On a Redis db that the caller has just emptied: N jobs added one at a time with Queue.add
// (each awaited before the next), then one Worker with the given concurrency drains them, timed
// from creating the Worker until its N-th "completed" event. BullMQ's defaults otherwise
// (completed jobs are kept). The same is done untimed first with --warmup jobs on another queue
// (bench-warmup), so that V8 has compiled the hot paths, as the Python contenders are warm from
// earlier rounds of the same process. Prints one JSON line: {"n", "enqueue_s", "drain_s",
// "counts"} of the timed run.
"use strict";

const { Queue, Worker } = require("bullmq");

function options(argv) {
  const opts = {
    host: "127.0.0.1",
    port: 0,
    db: 0,
    n: 5000,
    concurrency: 4,
    queue: "bench",
    warmup: 500,
  };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in opts)) throw new Error(`unknown option ${argv[i]}`);
    opts[key] = typeof opts[key] === "number" ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!opts.port || opts.port === 6379) throw new Error("--port: a test server's port, not 6379");
  return opts;
}

function seconds(start) {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function run(name, n, opts) {
  const connection = { host: opts.host, port: opts.port, db: opts.db };
  const queue = new Queue(name, { connection });
  await queue.waitUntilReady();

  let start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    await queue.add("noop", null);
  }
  const enqueue_s = seconds(start);

  let done = 0;
  let worker;
  const drained = new Promise((resolve, reject) => {
    start = process.hrtime.bigint();
    worker = new Worker(name, async () => null, {
      connection: { ...connection, maxRetriesPerRequest: null },
      concurrency: opts.concurrency,
    });
    worker.on("completed", () => {
      done += 1;
      if (done === n) resolve(seconds(start));
    });
    worker.on("failed", (job, err) => reject(err));
    worker.on("error", reject);
  });
  const timer = setTimeout(() => {
    console.error(`bench.js: ${done} of ${n} jobs of ${name} completed in 120 s`);
    process.exit(2);
  }, 120000);
  const drain_s = await drained;
  clearTimeout(timer);

  const counts = await queue.getJobCounts("waiting", "active", "delayed", "completed", "failed");
  await worker.close();
  await queue.close();
  return { n, enqueue_s, drain_s, counts };
}

async function main() {
  const opts = options(process.argv);
  if (opts.warmup > 0) await run(`${opts.queue}-warmup`, opts.warmup, opts);
  console.log(JSON.stringify(await run(opts.queue, opts.n, opts)));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
