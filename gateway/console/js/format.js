// How numbers, money and times are written: times in the viewer's own zone,
// money as the API's decimal strings with their currency, summed as integers, never as floats.

const dateTime = new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "medium"});
const timeOnly = new Intl.DateTimeFormat(undefined, {hour: "2-digit", minute: "2-digit", second: "2-digit"});
const zoneName = new Intl.DateTimeFormat(undefined, {timeZoneName: "short"});
const integers = new Intl.NumberFormat(undefined, {maximumFractionDigits: 0});
const decimals = new Intl.NumberFormat(undefined, {maximumFractionDigits: 2});

/** The viewer's time zone, as the page shows it ("CET", "GMT+8"). */
export function zone() {
  const part = zoneName.formatToParts(new Date()).find((p) => p.type === "timeZoneName");
  return part ? part.value : Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** Unix seconds as a date and time in the viewer's zone. */
export function when(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return dateTime.format(new Date(seconds * 1000));
}

/** Unix seconds as a time of day in the viewer's zone. */
export function clock(seconds) {
  return timeOnly.format(new Date(seconds * 1000));
}

export function count(n) {
  return n === null || n === undefined ? "–" : integers.format(n);
}

export function number(n) {
  return n === null || n === undefined ? "–" : decimals.format(n);
}

export function ms(n) {
  return n === null || n === undefined ? "–" : `${decimals.format(n)} ms`;
}

export function percent(ratio) {
  return ratio === null || ratio === undefined ? "–" : `${decimals.format(ratio * 100)} %`;
}

/** A rate limit: a number, or "no limit". */
export function limit(n) {
  return n === null || n === undefined ? "no limit" : integers.format(n);
}

const NANO_DIGITS = 9;

/**
 * A decimal string ("1.25", "-0.000000001") as integer nano-units (BigInt). A JSON number (the
 * ``cost`` of a streamed answer's usage) is first written with nine decimals, which recovers the
 * exact nano-dollar amount it was printed from.
 */
export function toNano(amount) {
  const text = typeof amount === "number" ? amount.toFixed(NANO_DIGITS) : String(amount ?? "0").trim();
  const negative = text.startsWith("-");
  const [whole, fraction = ""] = text.replace(/^[-+]/, "").split(".");
  const digits = (whole || "0") + fraction.padEnd(NANO_DIGITS, "0").slice(0, NANO_DIGITS);
  const value = BigInt(digits);
  return negative ? -value : value;
}

/** Integer nano-units back to a decimal string, trailing zeros dropped (two decimals kept). */
export function fromNano(nano) {
  const negative = nano < 0n;
  const digits = (negative ? -nano : nano).toString().padStart(NANO_DIGITS + 1, "0");
  const whole = digits.slice(0, -NANO_DIGITS);
  let fraction = digits.slice(-NANO_DIGITS).replace(/0+$/, "");
  if (fraction.length < 2) fraction = fraction.padEnd(2, "0");
  return `${negative ? "-" : ""}${whole}.${fraction}`;
}

/** An amount with its currency: money("0.000120000") -> "0.00012 USD". */
export function money(amount, currency = "USD") {
  if (amount === null || amount === undefined) return "–";
  return `${fromNano(toNano(amount))} ${currency}`;
}

/** The exact sum of decimal strings, as a decimal string. */
export function sum(amounts) {
  return fromNano(amounts.reduce((total, a) => total + toNano(a), 0n));
}

/** A decimal string as a float, for drawing only (bar lengths), never for arithmetic on money. */
export function magnitude(amount) {
  return Number(amount);
}

/** A UTC calendar date (YYYY-MM-DD) ``days`` from today. */
export function utcDate(days = 0) {
  const d = new Date(Date.now() + days * 86_400_000);
  return d.toISOString().slice(0, 10);
}

/** The UTC date after a YYYY-MM-DD date (usage ranges end before it). */
export function nextDate(date) {
  const d = new Date(`${date}T00:00:00Z`);
  return new Date(d.getTime() + 86_400_000).toISOString().slice(0, 10);
}
