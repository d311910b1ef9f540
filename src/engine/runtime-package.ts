// The Node.js runtime podnet ships to hosts, gzip-compressed once per machine and cached:
// a third of the bytes over SSH (and of the SSH cipher's CPU), unpacked on the host by gzip,
// which every Debian host has.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export interface RuntimePackage {
  /** sha256 of the uncompressed runtime (names its cache directory on hosts). */
  readonly sha256: string;
  readonly gzipPath: string;
}

function cacheDir(): string {
  return process.env.PODNET_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'podnet');
}

/** Hashing and compressing ~100 MB takes a second; do it once per runtime binary. */
export function runtimePackage(runtimePath = process.execPath): RuntimePackage {
  const st = statSync(runtimePath);
  const key = createHash('sha256').update(`${runtimePath}\0${st.size}\0${st.mtimeMs}\0${st.ino}`).digest('hex').slice(0, 16);
  const dir = join(cacheDir(), 'runtime', key);
  const meta = join(dir, 'sha256');
  const gzipPath = join(dir, 'node.gz');
  if (existsSync(meta) && existsSync(gzipPath)) return { sha256: readFileSync(meta, 'utf8').trim(), gzipPath };
  const binary = readFileSync(runtimePath);
  const sha256 = createHash('sha256').update(binary).digest('hex');
  mkdirSync(dir, { recursive: true });
  const tmp = `${gzipPath}.${process.pid}.tmp`;
  writeFileSync(tmp, gzipSync(binary, { level: 1 }));
  renameSync(tmp, gzipPath);
  writeFileSync(meta, `${sha256}\n`);
  return { sha256, gzipPath };
}
