/**
 * Text order by UTF-16 code units: the same on every machine and in every locale, and cheap.
 * `localeCompare` orders by ICU collation instead — it loads ICU's collation data into the
 * process (≈ 3 MiB of a daemon's resident set) and sorts 100 DIDs about 2.5 times slower.
 */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
