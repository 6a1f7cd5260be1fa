'use strict';
// QueueEvents from the start of the queue's event stream until SIGTERM; prints
// {"ready": true}, then {"event": name, ...fields} for every event
// (completed carries the parsed returnvalue, failed its failedReason).
const { QueueEvents } = require('bullmq');
const { settings, emit, die, closeOnSignal } = require('./common');

const EVENTS = [
  'added', 'waiting', 'delayed', 'active', 'completed', 'failed', 'stalled',
  'retries-exhausted', 'duplicated', 'paused', 'resumed',
];

async function main() {
  const { connection, name, prefix } = settings();
  const events = new QueueEvents(name, { connection, prefix, lastEventId: '0-0' });
  for (const event of EVENTS) {
    events.on(event, (fields) => emit({ event, ...fields }));
  }
  events.on('drained', () => emit({ event: 'drained' }));
  events.on('error', (err) => emit({ event: 'error', message: String(err && err.message) }));
  closeOnSignal(() => events.close());
  await events.waitUntilReady();
  emit({ ready: true });
}

main().catch(die);
