/**
 * A time as Date.prototype.toISOString writes it, from the UTC fields.
 * V8's toISOString asks ICU for the host's time zone on its first call (it
 * reads /etc/localtime and builds ICU's zone: 0.2-2 ms of a `berth run`),
 * which a time in UTC never needs; the UTC getters do not ask.
 */
const pad = (n: number, width: number): string => String(n).padStart(width, '0');

export const isoTime = (d: Date = new Date()): string => {
  if (Number.isNaN(d.getTime())) throw new RangeError('Invalid time value');
  const y = d.getUTCFullYear();
  const year = y >= 0 && y <= 9999 ? pad(y, 4) : `${y < 0 ? '-' : '+'}${pad(Math.abs(y), 6)}`;
  return `${year}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}T${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}.${pad(d.getUTCMilliseconds(), 3)}Z`;
};
