'use strict';
// job.retry() (what Bull Board's "Retry" calls) for each failed job id in argv[2..]; BullMQ
// keeps the job's attemptsMade. Prints {"retried": id} per job.
const { Queue } = require('bullmq');
const { settings, emit, die } = require('./common');

async function main() {
  const { connection, name, prefix } = settings();
  const queue = new Queue(name, { connection, prefix });
  try {
    for (const id of process.argv.slice(2)) {
      const job = await queue.getJob(id);
      if (!job) throw new Error(`no job ${id}`);
      await job.retry('failed');
      emit({ retried: id });
    }
  } finally {
    await queue.close();
  }
}

main().catch(die);
