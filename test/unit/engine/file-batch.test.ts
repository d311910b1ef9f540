// writeFilesScript (src/engine/file-batch.ts), the engine's only way of writing files on a host:
// the script it renders is run here with the local sh, as apply runs it on a host (`sh -s`, the
// script on stdin), in a temp directory.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFilesScript, type FileToWrite } from '../../../src/engine/file-batch';

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'podnet-batch-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function runBatch(files: readonly FileToWrite[]): { status: number | null; stderr: string } {
  const r = spawnSync('sh', ['-s'], { input: writeFilesScript(files), encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

/** Every name under `root`, recursively, sorted (temp files are dot files, so they show). */
function tree(root: string): string[] {
  return (readdirSync(root, { recursive: true }) as string[]).sort();
}

const mode = (p: string): number => statSync(p).mode & 0o777;

describe('writeFilesScript', () => {
  it('writes each file with its content and mode, creating parent directories, and leaves no temp file', () => {
    const binary = randomBytes(300_000); // many base64 lines, every byte value
    const files: FileToWrite[] = [
      { path: join(dir, 'etc/podnet/net.json'), content: '{"v":1}\n', mode: 0o640 },
      { path: join(dir, 'opt/podnet/agent.js'), content: binary, mode: 0o755 },
      { path: join(dir, 'etc/podnet/empty'), content: '', mode: 0o600 },
    ];
    expect(runBatch(files)).toEqual({ status: 0, stderr: '' });
    expect(readFileSync(files[0]!.path, 'utf8')).toBe('{"v":1}\n');
    expect(readFileSync(files[1]!.path).equals(binary)).toBe(true);
    expect(readFileSync(files[2]!.path, 'utf8')).toBe('');
    expect(files.map((f) => mode(f.path))).toEqual([0o640, 0o755, 0o600]);
    expect(tree(dir)).toEqual(['etc', 'etc/podnet', 'etc/podnet/empty', 'etc/podnet/net.json', 'opt', 'opt/podnet', 'opt/podnet/agent.js']);
  });

  it('replaces existing files, mode included', () => {
    const path = join(dir, 'unit.service');
    writeFileSync(path, 'old\n');
    chmodSync(path, 0o600);
    expect(runBatch([{ path, content: 'new\n', mode: 0o644 }]).status).toBe(0);
    expect(readFileSync(path, 'utf8')).toBe('new\n');
    expect(mode(path)).toBe(0o644);
  });

  it('leaves every target old when a later file fails, and removes the temp files already written', () => {
    const first = join(dir, 'a dir', "it's.json"); // needs quoting
    mkdirSync(join(dir, 'a dir'));
    writeFileSync(first, 'old\n');
    writeFileSync(join(dir, 'blocker'), 'a file where a directory should be');
    const r = runBatch([
      { path: first, content: 'new\n', mode: 0o644 },
      { path: join(dir, 'blocker', 'second'), content: 'x', mode: 0o644 },
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/blocker/);
    expect(readFileSync(first, 'utf8')).toBe('old\n');
    expect(tree(dir)).toEqual(['a dir', "a dir/it's.json", 'blocker']);
  });

  it('keeps heredoc text literal: content that looks like shell or like the end marker is written as it is', () => {
    const path = join(dir, 'tricky');
    const content = '$(touch pwned) `id` \'q\' "d"\nPODNET_EOF_0\n';
    expect(runBatch([{ path, content, mode: 0o644 }]).status).toBe(0);
    expect(readFileSync(path, 'utf8')).toBe(content);
    expect(tree(dir)).toEqual(['tricky']);
  });
});

describe('writeFilesScript under concurrency', () => {
  it('gives every temp file a unique name (mktemp), so batches running at once never share one', async () => {
    const target = join(dir, 'net.json');
    expect(writeFilesScript([{ path: target, content: 'x', mode: 0o644 }])).toContain(`t0=$(mktemp ${target}.podnet-tmp.XXXXXX)`);
    // 8 writers of 200 KB each at once: with a fixed temp name one would truncate another's file.
    const contents = Array.from({ length: 8 }, (_, i) => Buffer.alloc(200_000, 65 + i));
    const runs = contents.map(
      (content) =>
        new Promise<number | null>((resolve) => {
          const child = spawn('sh', ['-s'], { stdio: ['pipe', 'ignore', 'ignore'] });
          child.on('exit', resolve);
          child.stdin.end(writeFilesScript([{ path: target, content, mode: 0o644 }]));
        }),
    );
    expect(await Promise.all(runs)).toEqual(contents.map(() => 0));
    const final = readFileSync(target);
    expect(contents.some((c) => c.equals(final))).toBe(true);
    expect(tree(dir)).toEqual(['net.json']);
  });
});
