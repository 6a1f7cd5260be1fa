'use strict';
// queue.pause() or queue.resume() (argv[2]); prints {"paused": queue.isPaused()}.
const { Queue } = require('bullmq');
const { settings, emit, die } = require('./common');

async function main() {
  const { connection, name, prefix } = settings();
  const queue = new Queue(name, { connection, prefix });
  try {
    if (process.argv[2] === 'pause') await queue.pause();
    else if (process.argv[2] === 'resume') await queue.resume();
    else throw new Error(`usage: pause.js pause|resume, got ${process.argv[2]}`);
    emit({ paused: await queue.isPaused() });
  } finally {
    await queue.close();
  }
}

main().catch(die);
