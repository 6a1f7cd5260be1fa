'use strict';
// Prints {"workers": queue.getWorkers()}: the connections BullMQ counts as this queue's workers.
const { Queue } = require('bullmq');
const { settings, emit, die } = require('./common');

async function main() {
  const { connection, name, prefix } = settings();
  const queue = new Queue(name, { connection, prefix });
  try {
    emit({ workers: await queue.getWorkers() });
  } finally {
    await queue.close();
  }
}

main().catch(die);
