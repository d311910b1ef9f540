// Writing a local file so readers never see it half-written: temp file beside it, then rename.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { tempPathFor } from '../../src/model';

export async function writeFileAtomic(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  // Unique per writer: two processes writing one file (two agents, a restart racing its
  // predecessor) never share a temp file.
  const tmp = tempPathFor(path, `${process.pid}.${randomBytes(4).toString('hex')}`);
  await writeFile(tmp, content, { mode: 0o644 });
  await rename(tmp, path);
}
