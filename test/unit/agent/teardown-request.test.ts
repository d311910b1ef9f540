// The destroy -> agent teardown request: honoured only by the process it names, made after
// that process started.
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processStartedAt, teardownRequested } from '../../../agent/teardown-request';

describe('teardownRequested', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'podnet-req-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is true for a request naming this process, made after it started', async () => {
    const path = join(dir, 'ok');
    writeFileSync(path, `${process.pid}\n`);
    expect(await teardownRequested(path, process.pid, processStartedAt())).toBe(true);
  });

  it('is false for another PID, an old request (a reused PID), or none', async () => {
    const other = join(dir, 'other');
    writeFileSync(other, '999999\n');
    expect(await teardownRequested(other, process.pid, processStartedAt())).toBe(false);
    const stale = join(dir, 'stale');
    writeFileSync(stale, `${process.pid}\n`);
    const before = (processStartedAt() - 60_000) / 1000;
    utimesSync(stale, before, before);
    expect(await teardownRequested(stale, process.pid, processStartedAt())).toBe(false);
    expect(await teardownRequested(join(dir, 'absent'), process.pid, processStartedAt())).toBe(false);
  });
});
