// Scripts apply streams to a host's `sh -s` must run whole or not at all: a connection cut
// mid-stream ends stdin early, and the shell runs what it got (dash even runs an unterminated
// last line). Each script is cut at many points and run by the local dash and bash.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFilesScript, type FileToWrite } from '../../../src/engine/file-batch';
import { convergeWaitScript } from '../../../src/engine/apply';

const shells = ['sh', 'bash'].filter((s) => spawnSync(s, ['-c', ':']).status === 0);

/** Every cut point of `script` at most `count` of them, evenly spread, plus each line end. */
function cuts(script: string, count: number): number[] {
  const points = new Set<number>();
  for (let i = 1; i <= count; i++) points.add(Math.floor((script.length * i) / (count + 1)));
  for (let i = script.indexOf('\n'); i >= 0; i = script.indexOf('\n', i + 1)) points.add(i + 1);
  return [...points].filter((p) => p < script.length).sort((a, b) => a - b);
}

describe.each(shells)('scripts streamed to %s -s, cut short', (shell) => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'podnet-cut-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('the file batch leaves every target either untouched or whole, and nothing else', () => {
    const files: FileToWrite[] = [
      { path: join(dir, 'etc', 'cluster.json'), content: '{"network":"cluster"}\n', mode: 0o644 },
      { path: join(dir, 'etc', 'podnet-cluster.service'), content: '[Unit]\n', mode: 0o644 },
    ];
    const script = writeFilesScript(files);
    const points = cuts(script, 60);
    expect(points.length).toBeGreaterThan(20);
    for (const at of points) {
      rmSync(join(dir, 'etc'), { recursive: true, force: true });
      spawnSync(shell, ['-s'], { input: script.slice(0, at), encoding: 'utf8' });
      const written = files.filter((f) => existsSync(f.path));
      // Whole or not at all: both files or neither, each with its full content, no stray name.
      expect({ at, written: written.length }).toEqual({ at, written: written.length === 0 ? 0 : files.length });
      for (const f of written) expect(readFileSync(f.path, 'utf8')).toBe(f.content);
      const names = existsSync(join(dir, 'etc')) ? readdirSync(join(dir, 'etc')) : [];
      expect({ at, names: names.filter((n) => !files.some((f) => f.path.endsWith(`/${n}`))) }).toEqual({ at, names: [] });
    }
  });

  it('the converge wait, cut short, runs nothing (no wait, no output)', () => {
    const status = join(dir, 'status.json');
    const script = convergeWaitScript(status, 'abc', undefined, 0.2);
    for (const at of cuts(script, 20)) {
      const r = spawnSync(shell, ['-s'], { input: script.slice(0, at), encoding: 'utf8', timeout: 5_000 });
      expect({ at, out: r.stdout }).toEqual({ at, out: '' });
    }
  });
});
