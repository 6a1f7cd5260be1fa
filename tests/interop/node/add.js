'use strict';
// Queue.add each job of argv[2] (a JSON array of {name, data, opts}) in order;
// prints {"added": id, "name": name} per job.
const { Queue } = require('bullmq');
const { settings, emit, die } = require('./common');

async function main() {
  const { connection, name, prefix } = settings();
  const queue = new Queue(name, { connection, prefix });
  try {
    for (const spec of JSON.parse(process.argv[2])) {
      const job = await queue.add(spec.name, spec.data, spec.opts || {});
      emit({ added: job.id, name: job.name });
    }
  } finally {
    await queue.close();
  }
}

main().catch(die);
