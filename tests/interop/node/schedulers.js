'use strict';
// Node's job schedulers on the queue. argv[2] is the command:
//   upsert <id> <json {repeat, name, data, opts}>   queue.upsertJobScheduler(...)
//   list                                            {"schedulers": queue.getJobSchedulers()}
//   remove <id>                                     {"removed": queue.removeJobScheduler(id)}
const { Queue } = require('bullmq');
const { settings, emit, die } = require('./common');

async function main() {
  const { connection, name, prefix } = settings();
  const queue = new Queue(name, { connection, prefix });
  try {
    const [command, id, spec] = process.argv.slice(2);
    if (command === 'upsert') {
      const { repeat, name: jobName, data, opts } = JSON.parse(spec);
      const job = await queue.upsertJobScheduler(id, repeat, { name: jobName, data, opts });
      emit({ upserted: job && job.id });
    } else if (command === 'list') {
      emit({ schedulers: await queue.getJobSchedulers() });
    } else if (command === 'remove') {
      emit({ removed: await queue.removeJobScheduler(id) });
    } else {
      throw new Error(`unknown command ${command}`);
    }
  } finally {
    await queue.close();
  }
}

main().catch(die);
