// The shape that keeps engine and agent agreeing: the agent bundle may import only the shared
// modules (src/model, src/planner, src/host), the model imports nothing outside itself (so the
// constructs, the engine and the agent can all import it), and host paths are spelled out only
// in the model's host layout. Read from the source text, as a linter would.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = join(__dirname, '..', '..');

function sourceFiles(dir: string, exts = ['.ts']): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir))) {
    const rel = join(dir, name);
    if (statSync(join(root, rel)).isDirectory()) out.push(...sourceFiles(rel, exts));
    else if (exts.some((e) => name.endsWith(e))) out.push(rel);
  }
  return out;
}

/** Every relative module a file imports or re-exports, as a path relative to the project root. */
function relativeImports(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const specs = [
    ...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'/g),
    ...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g),
  ].map((m) => m[1]!);
  return specs.filter((s) => s.startsWith('.')).map((s) => relative(root, resolve(root, dirname(file), s)));
}

const within = (path: string, dirs: readonly string[]) => dirs.some((d) => path === d || path.startsWith(`${d}/`));

describe('module boundaries', () => {
  it('the agent imports nothing but its own folder and the shared modules', () => {
    const allowed = ['agent', 'src/model', 'src/planner', 'src/host'];
    const bad = sourceFiles('agent').flatMap((f) =>
      relativeImports(f)
        .filter((i) => !within(i, allowed))
        .map((i) => `${f} -> ${i}`),
    );
    expect(bad).toEqual([]);
  });

  it('the model imports nothing outside itself', () => {
    const bad = sourceFiles('src/model').flatMap((f) =>
      relativeImports(f)
        .filter((i) => !within(i, ['src/model']))
        .map((i) => `${f} -> ${i}`),
    );
    expect(bad).toEqual([]);
  });

  it('the shared modules the agent bundles import only each other and the model', () => {
    const shared = ['src/model', 'src/planner', 'src/host'];
    const bad = [...sourceFiles('src/planner'), ...sourceFiles('src/host')].flatMap((f) =>
      relativeImports(f)
        .filter((i) => !within(i, shared))
        .map((i) => `${f} -> ${i}`),
    );
    expect(bad).toEqual([]);
  });

  it('spells out the sysctl files the agent needs only in the host layout', () => {
    const files = ['src', 'agent'].flatMap((d) => sourceFiles(d, ['.ts'])).filter((f) => !f.startsWith('src/lab/'));
    const bad = files
      .filter((f) => f !== 'src/model/host-layout.ts')
      .filter((f) => /\/proc\/sys\/net\//.test(readFileSync(join(root, f), 'utf8')));
    expect(bad).toEqual([]);
  });

  it("spells out podnet's host directories only in the host layout", () => {
    const files = ['src', 'agent', 'stacks', 'examples', 'scripts'].flatMap((d) => sourceFiles(d, ['.ts', '.mjs', '.sh', '.c', '.h']));
    const bad = files
      .filter((f) => f !== 'src/model/host-layout.ts')
      .filter((f) => /\/(etc|run)\/podnet(?![-\w])/.test(readFileSync(join(root, f), 'utf8')));
    expect(bad).toEqual([]);
  });
});
