// Finding and reading the manifest a command works on.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseManifest, type NetworkManifest } from '../model';
import { CliError } from './cli-error';

/** Without --manifest, use the one manifest `cdktf synth` wrote under ./cdktf.out, if exactly one. */
export function defaultManifestPath(cwd = process.cwd()): string {
  const stacksDir = join(cwd, 'cdktf.out', 'stacks');
  const found: string[] = [];
  if (existsSync(stacksDir)) {
    for (const stack of readdirSync(stacksDir)) {
      const assets = join(stacksDir, stack, 'assets');
      if (!existsSync(assets)) continue;
      for (const dir of readdirSync(assets)) {
        const file = join(assets, dir, 'manifest.json');
        if (dir.startsWith('podnet-') && existsSync(file)) found.push(file);
      }
    }
  }
  if (found.length === 1) return found[0]!;
  if (found.length === 0) throw new CliError('no --manifest given and none found under ./cdktf.out (run `npx cdktf synth` first)');
  throw new CliError(`no --manifest given and several found; pick one:\n  ${found.join('\n  ')}`);
}

export function readManifestFile(path: string | undefined): { path: string; manifest: NetworkManifest } {
  const file = path ?? defaultManifestPath();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read manifest ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return { path: file, manifest: parseManifest(text, file) };
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}
