// The guide's bot helper, broadcastUpdate() (seed bot-integration-guide.md, section 2), and a
// bulk import made of it. Shared by tests/integration/bulk-import.test.mjs and
// tests/bench/bot-import.mjs, so the test and the figure measure the same code.
import axios from 'axios';

// Returns the guide's broadcastUpdate(), line for line, bound to a backend and a secret.
// `console` is the caller's recorder (see recordingConsole), so the helper's own log lines
// are what gets counted.
export function guideBroadcastUpdate(BACKEND_URL, INTERNAL_SECRET, console) {
  async function broadcastUpdate(type, data = {}) {
    if (!INTERNAL_SECRET) {
      console.warn('⚠️ INTERNAL_SECRET not set - skipping broadcast');
      return;
    }

    try {
      await axios.post(
        `${BACKEND_URL}/api/internal/broadcast`,
        { type, ...data },
        {
          headers: {
            'x-internal-secret': INTERNAL_SECRET
          },
          timeout: 2000
        }
      );
      console.log(`✅ Broadcast sent: ${type}`, data);
    } catch (error) {
      console.error(`❌ Broadcast failed: ${type}`, error.message);
    }
  }
  return broadcastUpdate;
}

// A console that counts the helper's "✅ Broadcast sent" lines and keeps the others.
export function recordingConsole() {
  const lines = { sent: 0, failed: [], warned: [] };
  return {
    lines,
    log: () => {
      lines.sent += 1;
    },
    warn: (...args) => lines.warned.push(args.join(' ')),
    error: (...args) => lines.failed.push(args.join(' ')),
  };
}

// `count` product_added events for `shopId` (productId 1..count) through the guide's helper,
// `inFlight` calls at a time, each awaited like a bot's handler awaits it. Resolves with the
// helper's log lines and the elapsed seconds.
export async function importProducts({ backendUrl, secret, shopId, count, inFlight }) {
  const recorder = recordingConsole();
  const broadcastUpdate = guideBroadcastUpdate(backendUrl, secret, recorder);
  let next = 1;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next <= count) {
        const productId = next++;
        await broadcastUpdate('product_added', { shopId, productId });
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { ...recorder.lines, seconds };
}
