import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildManifest } from '../../../src/model';
import { referenceSpec } from '../reference-network';

const root = join(__dirname, '..', '..', '..');
const podnet = (args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'podnet'), ...args], { encoding: 'utf8' });

describe('podnet plan --offline', () => {
  let dir: string;
  let manifestPath: string;
  beforeAll(() => {
    execFileSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'ignore' });
    dir = mkdtempSync(join(tmpdir(), 'podnet-cli-'));
    manifestPath = join(dir, 'manifest.json');
    writeFileSync(manifestPath, JSON.stringify(buildManifest(referenceSpec)));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("prints node1's route table as DESIGN.md shows it", () => {
    const out = podnet(['plan', '--offline', '--manifest', manifestPath, '--node', 'node1']);
    expect(out.status).toBe(0);
    expect(out.stdout).toContain('10.244.0.0      192.168.0.80    255.255.255.0   UG    flannel.ipip');
    expect(out.stdout).toContain('10.244.1.0      0.0.0.0         255.255.255.0   U     cni0');
    expect(out.stdout).toContain('10.244.2.0      192.168.0.82    255.255.255.0   UG    flannel.ipip');
    expect(out.stdout).toContain('ipip remote any local 192.168.0.81 ttl inherit nopmtudisc, mtu 1480');
    expect(out.stdout).toContain('FLANNEL_SUBNET=10.244.1.1/24');
    expect(out.stdout).not.toContain('master (');
  });

  it('prints JSON with --json', () => {
    const out = podnet(['plan', '--offline', '--manifest', manifestPath, '--json']);
    expect(out.status).toBe(0);
    const doc = JSON.parse(out.stdout) as { schema: string; hosts: Array<{ node: string }> };
    expect(doc.schema).toBe('podnet.dev/offline-plan/v1');
    expect(doc.hosts.map((h) => h.node)).toEqual(['master', 'node1', 'node2']);
  });

  it('podnet --help says what each command does', () => {
    const out = podnet(['--help']);
    expect(out.status).toBe(0);
    expect(out.stdout).toMatch(/^ {2}drift +report where hosts differ from the manifest/m);
    expect(out.stdout).toMatch(/^ {2}destroy +remove the agent/m);
    expect(out.stdout.match(/^ {2}\w+ {2,}\S/gm)).toHaveLength(5);
  });

  it('lets a reader stop early (| head) without a crash, keeping its own exit code', () => {
    // 200 nodes print far more than a pipe holds, so podnet is still writing when head leaves.
    const big = join(dir, 'big.json');
    const nodes = Array.from({ length: 200 }, (_, i) => ({ name: `n${i}`, address: `192.168.${1 + (i >> 8)}.${1 + (i & 255)}` }));
    writeFileSync(big, JSON.stringify(buildManifest({ ...referenceSpec, underlay: { prefixLength: 16 }, nodes })));
    const script = `set -o pipefail; ${JSON.stringify(process.execPath)} ${JSON.stringify(join(root, 'bin', 'podnet'))} plan --offline --manifest ${JSON.stringify(big)} | head -c 1 >/dev/null`;
    const out = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
    expect({ status: out.status, stderr: out.stderr }).toEqual({ status: 0, stderr: '' });
  });

  it('fails with a clear message for an unknown node, a bad manifest and an unknown command', () => {
    const unknownNode = podnet(['plan', '--offline', '--manifest', manifestPath, '--node', 'node9']);
    expect(unknownNode.status).toBe(1);
    expect(unknownNode.stderr).toMatch(/node 'node9' is not in network 'cluster'/);

    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...buildManifest(referenceSpec), network: { ...referenceSpec, clusterCidr: '10.244.0.0/33' } }));
    const badOut = podnet(['plan', '--offline', '--manifest', bad]);
    expect(badOut.status).toBe(1);
    expect(badOut.stderr).toMatch(/network\.clusterCidr "10\.244\.0\.0\/33"/);
    expect(badOut.stderr).not.toMatch(/at .*\.js/); // a message, not a stack trace

    const unknown = podnet(['frobnicate']);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
  });
});
