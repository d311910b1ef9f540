// The engine's one-round-trip host read, run here with the local sh: a read the agent requires
// that fails on the host is an error, never mistaken for a host with no links or routes.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostReadScript, HostReadError, parseHostReading } from '../../../src/engine/host-reading';
import { hostErrorOf } from '../../../src/engine/host-error';

describe('hostReadScript', () => {
  let bin: string;
  beforeAll(() => {
    bin = mkdtempSync(join(tmpdir(), 'podnet-read-'));
    // An `ip` that fails, as on a host whose iproute2 is broken or too old for -json.
    writeFileSync(join(bin, 'ip'), '#!/bin/sh\necho "ip: unknown option" >&2\nexit 1\n');
    chmodSync(join(bin, 'ip'), 0o755);
  });
  afterAll(() => rmSync(bin, { recursive: true, force: true }));

  it('turns a failed required read into a host-read error naming it', () => {
    const out = execFileSync('sh', ['-c', hostReadScript('cluster')], {
      encoding: 'utf8',
      env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin` },
    });
    expect(() => parseHostReading(out)).toThrow(HostReadError);
    expect(() => parseHostReading(out)).toThrow(/live state failed: links, addrs, routes/);
    let err: unknown;
    try {
      parseHostReading(out);
    } catch (e) {
      err = e;
    }
    expect(hostErrorOf(err).kind).toBe('host-read');
  });

  it('reads the real host here without error (its own ip works)', () => {
    const out = execFileSync('sh', ['-c', hostReadScript('cluster')], { encoding: 'utf8' });
    const reading = parseHostReading(out);
    expect(reading.live.links.some((l) => l.name === 'lo')).toBe(true);
  });
});
