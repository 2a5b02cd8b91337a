// Live parts refresh by polling, bounded: one request at a time, never faster than the
// interval, slower after failures (up to 16x), paused while the tab is hidden, and stopped
// with the view that started it.

const MIN_INTERVAL_MS = 1000;
const MAX_BACKOFF = 16;

/**
 * Run ``task`` every ``intervalMs`` (the first time now, unless ``now`` is false: the view has
 * just loaded it); ``onError`` hears failures. Returns stop().
 */
export function poll(task, intervalMs, {onError, onTick, now = false} = {}) {
  const interval = Math.max(intervalMs, MIN_INTERVAL_MS);
  let stopped = false;
  let running = false;
  let timer = null;
  let failures = 0;

  async function tick() {
    timer = null;
    if (stopped || running) return;
    if (document.hidden) return; // resumed by visibilitychange
    running = true;
    try {
      await task();
      failures = 0;
      if (onTick) onTick(new Date());
    } catch (error) {
      failures += 1;
      if (onError) onError(error);
    } finally {
      running = false;
    }
    if (!stopped) timer = setTimeout(tick, interval * Math.min(2 ** failures, MAX_BACKOFF));
  }

  function visibility() {
    if (!document.hidden && !stopped && !running && timer === null) tick();
  }

  document.addEventListener("visibilitychange", visibility);
  if (now) tick();
  else timer = setTimeout(tick, interval);
  return () => {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    document.removeEventListener("visibilitychange", visibility);
  };
}
