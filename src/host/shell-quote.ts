// Quoting for POSIX sh, the one function both the SSH transport (src/ssh) and the cdktf
// construct's local-exec commands (stacks/) use. Pure; tested in test/unit/host/shell-quote.test.ts.

/**
 * Characters that are never special to POSIX sh anywhere in a word, so a word made only of
 * them goes unquoted (keeps commands readable, and the construct's revision stable). Comma is
 * left out on purpose: harmless in sh, but bash brace expansion gives it a meaning.
 */
const SAFE_WORD = /^[A-Za-z0-9_@%+=:./-]+$/;

/** Quotes one word for POSIX sh: `it's` -> `'it'\''s'`; the empty word -> `''`. */
export function shQuote(word: string): string {
  if (SAFE_WORD.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}
