// src/host/shell-quote.ts: the one shell quoter (SSH commands and the construct's local-exec).
// Every word must come back unchanged through a real sh and a real bash.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { shQuote } from '../../../src/host/shell-quote';

const WORDS = [
  'plain',
  '',
  "it's",
  'a b',
  '$(touch /tmp/pwned)',
  '`id`',
  '"\\`',
  'x\ny',
  'a,b',
  '{a,b}',
  '*',
  '~',
  '~root',
  '#x',
  'a;b',
  'a|b',
  'a&b',
  '!x',
  'a=b',
  '--manifest',
  '/etc/podnet/net.json',
  'user@host:22',
  '100%',
  'a+b',
  "''",
  '\t',
  'é',
];

describe('shQuote', () => {
  it('leaves words of safe characters alone and quotes everything else', () => {
    expect(shQuote('/usr/local/lib/podnet/podnet-agent.js')).toBe('/usr/local/lib/podnet/podnet-agent.js');
    expect(shQuote('--revision=ab12:x@y%z+w')).toBe('--revision=ab12:x@y%z+w');
    expect(shQuote('')).toBe(`''`);
    expect(shQuote("it's")).toBe(`'it'\\''s'`);
    expect(shQuote('a,b')).toBe(`'a,b'`); // bash would brace-expand {a,b}; comma is quoted to be safe everywhere
    expect(shQuote('~')).toBe(`'~'`);
  });

  for (const shell of ['sh', 'bash']) {
    const available = existsSync(`/bin/${shell}`) || existsSync(`/usr/bin/${shell}`);
    (available ? it : it.skip)(`round-trips every word through ${shell}${available ? '' : ` (skipped: no ${shell} installed)`}`, () => {
      const script = WORDS.map((w) => `printf '%s\\0' ${shQuote(w)}`).join('\n');
      const out = execFileSync(shell, ['-c', script]).toString('utf8');
      expect(out.split('\0').slice(0, -1)).toEqual(WORDS);
    });
  }
});
