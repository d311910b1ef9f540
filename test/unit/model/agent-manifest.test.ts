// The build's manifest of shipped files is what the construct's revision and the engine's
// uploads both read: a change to a native part alone must change the revision.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { agentFingerprint } from '../../../stacks/agent-fingerprint';
import { loadArtifacts, MissingBuildError } from '../../../src/engine/artifacts';
import { AGENT_MANIFEST_SCHEMA, AgentManifestError, agentIdentity, parseAgentManifest, type AgentManifest } from '../../../src/model';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** A project root with a dist/agent/ of the given files and the manifest the build would write. */
function fakeBuild(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'podnet-manifest-'));
  writeFileSync(join(root, 'package.json'), JSON.stringify({ version: '0.1.0' }));
  const dist = join(root, 'dist', 'agent');
  mkdirSync(dist, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    writeFileSync(join(dist, name), content);
    if (name === 'podnet-bpf') chmodSync(join(dist, name), 0o755);
  }
  const manifest: AgentManifest = {
    schema: AGENT_MANIFEST_SCHEMA,
    version: '0.1.0',
    build: 'b',
    files: Object.entries(files).map(([name, content]) => ({ name, sha256: sha(content), mode: name === 'podnet-bpf' ? 0o755 : 0o644 })),
  };
  writeFileSync(join(dist, 'manifest.json'), JSON.stringify(manifest));
  return root;
}

describe('the agent manifest', () => {
  const roots: string[] = [];
  afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));
  const build = (files: Record<string, string>) => {
    const r = fakeBuild(files);
    roots.push(r);
    return r;
  };

  it('changes the revision when only a native part changes (the BPF loader here)', () => {
    const before = agentFingerprint(build({ 'podnet-agent.js': 'js', 'podnet-bpf': 'loader v1' }));
    const after = agentFingerprint(build({ 'podnet-agent.js': 'js', 'podnet-bpf': 'loader v2' }));
    expect(after).not.toBe(before);
    expect(after).toMatch(/^[0-9a-f]{16}$/);
  });

  it('keeps the revision when nothing shipped changed', () => {
    expect(agentFingerprint(build({ 'podnet-agent.js': 'js', 'podnet-bpf': 'x' }))).toBe(
      agentFingerprint(build({ 'podnet-agent.js': 'js', 'podnet-bpf': 'x' })),
    );
  });

  it('has the engine ship exactly the files it lists, with their modes', () => {
    const a = loadArtifacts(build({ 'podnet-agent.js': 'js', 'podnet-bpf': 'loader', 'podnet-ipip.bpf.o': 'obj' }));
    expect(a.agent).toMatchObject({ name: 'podnet-agent.js', remotePath: '/usr/local/lib/podnet/podnet-agent.js', sha256: sha('js') });
    expect(a.extras.map((e) => [e.name, e.remotePath, e.mode])).toEqual([
      ['podnet-bpf', '/usr/local/lib/podnet/podnet-bpf', 0o755],
      ['podnet-ipip.bpf.o', '/usr/local/lib/podnet/podnet-ipip.bpf.o', 0o644],
    ]);
  });

  it('refuses to ship a file changed since the build', () => {
    const root = build({ 'podnet-agent.js': 'js', 'podnet-bpf': 'loader' });
    writeFileSync(join(root, 'dist', 'agent', 'podnet-bpf'), 'rebuilt half-way');
    expect(() => loadArtifacts(root)).toThrow(MissingBuildError);
    expect(() => loadArtifacts(root)).toThrow(/podnet-bpf does not match the build manifest \(changed since the build\)/);
  });

  it('rejects a malformed manifest, naming the file and what is wrong', () => {
    expect(() => parseAgentManifest('{', '/x/manifest.json')).toThrow(AgentManifestError);
    expect(() =>
      parseAgentManifest(
        JSON.stringify({
          schema: AGENT_MANIFEST_SCHEMA,
          version: '1',
          build: 'b',
          files: [{ name: '../etc/passwd', sha256: sha(''), mode: 0o644 }],
        }),
        '/x/manifest.json',
      ),
    ).toThrow('/x/manifest.json: files[0].name is not a plain file name; run `npm run build`');
    expect(() => parseAgentManifest(JSON.stringify({ schema: AGENT_MANIFEST_SCHEMA, version: '1', build: 'b', files: [] }), 'm')).toThrow(
      /podnet-agent.js is not listed/,
    );
  });

  it('identity covers name, mode and content', () => {
    const m = (mode: 0o755 | 0o644, content = 'x', name = 'podnet-agent.js'): AgentManifest => ({
      schema: AGENT_MANIFEST_SCHEMA,
      version: '1',
      build: 'b',
      files: [{ name, sha256: sha(content), mode }],
    });
    const base = agentIdentity(m(0o644));
    expect(agentIdentity(m(0o755))).not.toBe(base);
    expect(agentIdentity(m(0o644, 'y'))).not.toBe(base);
    expect(agentIdentity(m(0o644, 'x', 'other'))).not.toBe(base);
  });
});
