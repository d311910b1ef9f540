// fs.inotify.max_user_instances: every systemd inside a lab host takes several inotify
// instances, and the default 128 runs out at about 25 hosts. A lab raises it while it is up and
// the last lab down puts the original value back. The bookkeeping lives in one small file so
// that labs of different names share it.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_STATE_ROOT } from './lab-config';

const KEY = '/proc/sys/fs/inotify/max_user_instances';
const BOOK = join(LAB_STATE_ROOT, '.inotify.json');
interface Book {
  original: number;
  set: number;
  holders: Record<string, number>;
}

const readValue = (): number => Number(readFileSync(KEY, 'utf8').trim());

function loadBook(): Book | undefined {
  try {
    return existsSync(BOOK) ? (JSON.parse(readFileSync(BOOK, 'utf8')) as Book) : undefined;
  } catch {
    return undefined;
  }
}

/** Raises the limit for a lab of `hosts` hosts; returns the value set, or undefined if unchanged. */
export function raiseInotify(lab: string, hosts: number): number | undefined {
  const current = readValue();
  const book = loadBook() ?? { original: current, set: current, holders: {} };
  book.holders[lab] = hosts;
  const total = Object.values(book.holders).reduce((a, b) => a + b, 0);
  const need = 128 + 16 * total;
  mkdirSync(LAB_STATE_ROOT, { recursive: true });
  if (current < need) {
    writeFileSync(KEY, String(need));
    book.set = need;
  }
  writeFileSync(BOOK, JSON.stringify(book) + '\n');
  return current < need ? need : undefined;
}

/** Drops the lab's claim; the last one out restores the original value (if nobody changed it since). */
export function releaseInotify(lab: string): void {
  const book = loadBook();
  if (!book || !(lab in book.holders)) return;
  delete book.holders[lab];
  if (Object.keys(book.holders).length === 0) {
    if (readValue() === book.set && book.set !== book.original) writeFileSync(KEY, String(book.original));
    writeFileSync(BOOK, '');
    require('node:fs').rmSync(BOOK, { force: true });
  } else {
    writeFileSync(BOOK, JSON.stringify(book) + '\n');
  }
}
