// The page's wording rules: counts, the reconnect countdown and short titles. Pure functions, no DOM and
// no clock reads (times are passed in), so the browser tests call them directly.

/**
 * Return `count` with the noun in the right number: "1 message", "2 messages", "0 jobs".
 * @param {number} count
 * @param {string} one the singular noun.
 * @param {string} [many] the plural noun when it is not `one` + "s".
 */
export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

/** Return the whole seconds left until `deadlineMs` at `nowMs`, rounded up, never negative. */
export function secondsLeft(deadlineMs, nowMs) {
  return Math.max(0, Math.ceil((deadlineMs - nowMs) / 1000));
}

/** Return the ms from `nowMs` until the seconds-left count next drops (at most 1000). */
export function untilNextSecond(deadlineMs, nowMs) {
  const left = deadlineMs - nowMs;
  if (left <= 0) return 0;
  return left % 1000 || 1000;
}

/**
 * Return the status line while a reconnect waits: "Reconnecting in 5 s…", then
 * "Reconnecting…" once the wait is over (the attempt itself).
 * @param {number} seconds whole seconds left, from secondsLeft().
 * @param {string} [reason] why the connection went, shown after the count.
 */
export function reconnectText(seconds, reason) {
  const wait = seconds > 0 ? ` in ${seconds} s` : "";
  const why = reason ? ` (${reason})` : "";
  return `Reconnecting${wait}…${why}`;
}

/**
 * Return `text` cut to at most `max` characters at a word boundary, ending in "…" when cut.
 * A single word longer than `max` is the one case cut inside a word.
 */
export function shortTitle(text, max) {
  const clean = text.replace(/\s+/g, " ").trim();
  if (clean.length <= max) return clean;
  const room = clean.slice(0, max); // max - 1 characters of text, then the ellipsis
  const lastSpace = room.lastIndexOf(" ");
  const words = lastSpace > 0 ? room.slice(0, lastSpace).replace(/[\s.,;:!?-]+$/, "") : "";
  return `${words || room.slice(0, max - 1)}…`;
}
