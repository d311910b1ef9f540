// Writing a local file so readers never see it half-written: temp file beside it, then rename.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { tempPathFor } from '../../src/model';

export async function writeFileAtomic(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  await writeFile(tmp, content, { mode: 0o644 });
  await rename(tmp, path);
}
