// The Node.js runtime podnet ships to hosts, identified by its sha256 (which names its cache
// directory on hosts). Hashing ~100 MB takes a quarter of a second, so the hash is cached per
// binary (path, size, mtime, inode).
//
// It travels uncompressed, streamed over an SSH exec channel: measured on 30 lab hosts
// sharing 2 cores, gzip (40 MB, unpacked by each host's gzip at ~0.5 CPU-s) took the runtime
// step from 15 s to 21 s; the SSH cipher's cost for the extra bytes is smaller than gunzip's.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface RuntimePackage {
  readonly sha256: string;
  readonly path: string;
}

function cacheDir(): string {
  return process.env.PODNET_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'podnet');
}

export function runtimePackage(runtimePath = process.execPath): RuntimePackage {
  const st = statSync(runtimePath);
  const key = createHash('sha256').update(`${runtimePath}\0${st.size}\0${st.mtimeMs}\0${st.ino}`).digest('hex').slice(0, 16);
  const meta = join(cacheDir(), 'runtime', `${key}.sha256`);
  if (existsSync(meta)) return { sha256: readFileSync(meta, 'utf8').trim(), path: runtimePath };
  const sha256 = createHash('sha256').update(readFileSync(runtimePath)).digest('hex');
  mkdirSync(join(cacheDir(), 'runtime'), { recursive: true });
  writeFileSync(meta, `${sha256}\n`);
  return { sha256, path: runtimePath };
}
