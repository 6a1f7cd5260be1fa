'use strict';
// Prints {"counts": queue.getJobCounts()}, then {"job": snapshot} for each id in argv[2..]
// (snapshot is null for a missing job).
const { Queue } = require('bullmq');
const { settings, emit, die, snapshot } = require('./common');

async function main() {
  const { connection, name, prefix } = settings();
  const queue = new Queue(name, { connection, prefix });
  try {
    emit({ counts: await queue.getJobCounts() });
    for (const id of process.argv.slice(2)) {
      emit({ id, job: await snapshot(await queue.getJob(id)) });
    }
  } finally {
    await queue.close();
  }
}

main().catch(die);
