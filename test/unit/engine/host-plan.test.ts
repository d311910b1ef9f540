// The per-host plan: which Node.js runs the agent, and when systemd needs a reload. Pure.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostDrift } from '../../../src/engine/drift';
import { hostPlanJson, PLAN_SCHEMA } from '../../../src/views/json';
import type { Artifact, ArtifactSet } from '../../../src/engine/artifacts';
import { hostTargets, OtherNetworkRunningError, planHost, type HostTarget } from '../../../src/engine/host-plan';
import { removeOtherNetworkScript } from '../../../src/engine/destroy';
import { otherNetworks } from '../../../src/planner/stale-state';
import { HOST_NODE_MAX_HOPS, HOST_NODE_PROBE, parseHostNode, parseHostReading, type HostReading } from '../../../src/engine/host-reading';
import { chooseRuntime, hostNodeProblem, RuntimeUnavailableError } from '../../../src/engine/runtime-choice';
import { EMPTY_RECORD, resolveNetwork, TEARDOWN_CONFIG_UNREADABLE, type AgentRuntimeChoice } from '../../../src/model';
import { referenceSpec } from '../reference-network';

const artifact = (name: string, remotePath: string): Artifact => ({
  name,
  localPath: `/dist/${name}`,
  remotePath,
  sha256: `sha-${name}`,
  mode: 0o644,
});
const artifacts: ArtifactSet = {
  agent: artifact('podnet-agent.js', '/usr/local/lib/podnet/podnet-agent.js'),
  extras: [],
  runtime: artifact('node', '/usr/local/lib/podnet/runtimes/abcd/node'),
  agentBuild: 'build-1',
};

function target(agentRuntime?: AgentRuntimeChoice): HostTarget {
  const spec = { ...referenceSpec, ...(agentRuntime ? { agentRuntime } : {}) };
  return hostTargets(spec, resolveNetwork(spec)).find((t) => t.node === 'node1')!;
}

/** node1's eth0 holding its address, and nothing of podnet's. */
function underlayOnly(ipForward: boolean): HostReading['live'] {
  return {
    links: [{ name: 'eth0', ifindex: 2, mtu: 1500, up: true }],
    addresses: [{ device: 'eth0', cidr: '192.168.0.81/24' }],
    routes: [],
    ipForward,
  };
}

/** A host as `podnet apply` left it (agent running this config), with edits. */
function installed(t: HostTarget, edit: Partial<HostReading> = {}): HostReading {
  return {
    live: underlayOnly(true),
    unit: { activeState: 'active', unitFileState: 'enabled', loadState: 'loaded' },
    unitFile: t.unit,
    config: t.config,
    hashes: { [artifacts.agent.remotePath]: artifacts.agent.sha256 },
    ...edit,
  };
}

const fresh: HostReading = {
  live: underlayOnly(false),
  unit: { activeState: 'inactive', unitFileState: '', loadState: 'not-found' },
  hashes: {},
};
const node18 = { path: '/usr/bin/node', realPath: '/usr/bin/nodejs', version: 'v18.20.4' };

describe('which Node.js runs the agent', () => {
  it("takes the host's node when it is 18 or newer, and ships one otherwise (auto)", () => {
    expect(chooseRuntime('auto', node18, artifacts.runtime)).toEqual({ kind: 'host', path: '/usr/bin/node', version: 'v18.20.4' });
    expect(chooseRuntime('auto', { path: '/usr/bin/node', realPath: '/usr/bin/node', version: 'v16.20.2' }, artifacts.runtime).kind).toBe(
      'bundled',
    );
    expect(chooseRuntime('auto', undefined, artifacts.runtime).kind).toBe('bundled');
    expect(chooseRuntime('bundled', node18, artifacts.runtime).kind).toBe('bundled');
  });

  it("says why when the network insists on the host's node and it has none usable", () => {
    expect(() =>
      chooseRuntime('host', { path: '/usr/bin/node', realPath: '/usr/bin/node', version: 'v16.20.2' }, artifacts.runtime),
    ).toThrow(RuntimeUnavailableError);
    expect(() => chooseRuntime('host', undefined, artifacts.runtime)).toThrow(/no `node` on its PATH.*agentRuntime is 'host'/);
    expect(hostNodeProblem({ path: '/opt/node', realPath: '/opt/node', version: '' })).toMatch(/did not report a version/);
    expect(hostNodeProblem({ path: '/usr/bin/node', realPath: '/usr/bin/node', version: 'v20.20.2' })).toBeUndefined();
  });

  it('reads the host node from the host reading', () => {
    const out = ['', '@@podnet:hostnode', '/usr/bin/node', '/usr/bin/nodejs', 'v18.20.4', '@@podnet:end', ''].join('\n');
    expect(parseHostReading(out).hostNode).toEqual(node18);
    expect(parseHostReading('\n@@podnet:hostnode\n\n@@podnet:end\n').hostNode).toBeUndefined();
  });

  it('wants Node 18.19 or newer, from a place the sandboxed unit can run', () => {
    expect(hostNodeProblem({ path: '/usr/bin/node', realPath: '/usr/bin/node', version: 'v18.2.0' })).toMatch(
      /v18.2.0; the agent needs Node.js >= 18.19/,
    );
    expect(hostNodeProblem({ path: '/usr/bin/node', realPath: '/usr/bin/node', version: 'v18.19.0' })).toBeUndefined();
    expect(
      hostNodeProblem({ path: '/usr/local/bin/node', realPath: '/root/.nvm/versions/node/v20.1.0/bin/node', version: 'v20.1.0' }),
    ).toMatch(/under \/root\/, where the agent's sandboxed unit cannot run it/);
    expect(
      hostNodeProblem({ path: '/usr/local/bin/node', realPath: '/usr/local/lib/podnet/runtimes/abcd/node', version: 'v20.20.2' }),
    ).toMatch(/under \/usr\/local\/lib\/podnet\//);
    expect(
      chooseRuntime('auto', { path: '/snap/bin/node', realPath: '/snap/node/1/bin/node', version: 'v20.1.0' }, artifacts.runtime).kind,
    ).toBe('bundled');
  });

  // The probe in the host read, run by sh here with a stand-in node on PATH. Only root owns a
  // place that root alone can write (here /run): elsewhere every node is rightly untrusted.
  const asRoot = process.getuid?.() === 0;
  (asRoot ? describe : describe.skip)('the probe in the host read (needs root: a stand-in node in a root-only /run directory)', () => {
    let dir: string;
    let open: string;
    const ran = () => existsSync(join(dir, 'ran')) || existsSync(join(open, 'ran'));
    const standIn = (at: string) => {
      mkdirSync(join(at, 'bin'), { mode: 0o755 });
      writeFileSync(join(at, 'bin', 'node'), `#!/bin/sh\ntouch ${join(at, 'ran')}\necho v18.20.4\n`, { mode: 0o755 });
    };
    beforeAll(() => {
      dir = mkdtempSync('/run/podnet-probe-');
      standIn(dir);
      open = mkdtempSync(join(tmpdir(), 'podnet-probe-')); // under /tmp (mode 1777)
      standIn(open);
    });
    afterEach(() => rmSync(join(dir, 'ran'), { force: true }) ?? rmSync(join(open, 'ran'), { force: true }));
    afterAll(() => [dir, open].forEach((d) => rmSync(d, { recursive: true, force: true })));
    const probe = (activeState: string, bin = join(dir, 'bin')) =>
      parseHostNode(
        execFileSync('sh', ['-c', `u='ActiveState=${activeState}'; r=$(readlink ${join(dir, 'link')})\n${HOST_NODE_PROBE}`], {
          encoding: 'utf8',
          env: { PATH: `${bin}:/usr/bin:/bin` },
        }),
      );

    it('reports the path, the binary it resolves to and its version', () => {
      expect(probe('active')).toEqual({ path: join(dir, 'bin', 'node'), realPath: join(dir, 'bin', 'node'), version: 'v18.20.4' });
    });

    it('skips the version only while a running agent uses that node', () => {
      symlinkSync(join(dir, 'bin', 'node'), join(dir, 'link'));
      expect(probe('active')).toEqual({ path: join(dir, 'bin', 'node'), linked: true });
      expect(probe('failed')).toMatchObject({ version: 'v18.20.4' });
      rmSync(join(dir, 'link'));
    });

    it('names what others than root could change on the way to the binary, and never runs it (review finding 17)', () => {
      // Under /tmp: the directory is everyone's (sticky or not, root would run what is there).
      const node = join(open, 'bin', 'node');
      expect(probe('active', join(open, 'bin'))).toEqual({
        path: node,
        realPath: node,
        untrusted: expect.arrayContaining([{ path: tmpdir(), uid: 0, mode: '1777' }]),
      });
      expect(ran()).toBe(false);
      // A root-only directory on PATH whose node is a link to one others can replace.
      mkdirSync(join(dir, 'via'), { mode: 0o755 });
      symlinkSync(node, join(dir, 'via', 'node'));
      expect(probe('failed', join(dir, 'via'))).toMatchObject({
        path: join(dir, 'via', 'node'),
        realPath: node,
        untrusted: expect.any(Array),
      });
      // The binary root owns, in a group-writable directory (a deploy group's /opt/tools).
      chmodSync(join(dir, 'bin'), 0o775);
      try {
        expect(probe('failed')).toMatchObject({ untrusted: [{ path: join(dir, 'bin'), uid: 0, mode: '775' }] });
      } finally {
        chmodSync(join(dir, 'bin'), 0o755);
      }
      expect(ran()).toBe(false);
      expect(probe('failed')).toMatchObject({ version: 'v18.20.4' });
    });

    it('checks the directory holding every symlink on the way, directories too, however long the chain', () => {
      // /opt/node -> /srv/deploy/node -> ...: a directory link in a directory someone else owns.
      mkdirSync(join(dir, 'data', 'v20'), { recursive: true, mode: 0o755 });
      symlinkSync(join(dir, 'bin'), join(dir, 'data', 'v20', 'bin'));
      mkdirSync(join(dir, 'srv'), { mode: 0o755 });
      chownSync(join(dir, 'srv'), 1000, 1000);
      symlinkSync(join(dir, 'data', 'v20'), join(dir, 'srv', 'a'));
      mkdirSync(join(dir, 'usrlocal'), { mode: 0o755 });
      symlinkSync(join(dir, 'srv', 'a', 'bin'), join(dir, 'usrlocal', 'bin'));
      expect(probe('failed', join(dir, 'usrlocal', 'bin'))).toMatchObject({
        realPath: join(dir, 'bin', 'node'),
        untrusted: [{ path: join(dir, 'srv'), uid: 1000, mode: '755' }],
      });
      // Ten file links (more than the old limit of 8) to a node under /tmp, all in a root-only directory.
      mkdirSync(join(dir, 'hops'), { mode: 0o755 });
      symlinkSync(join(open, 'bin', 'node'), join(dir, 'hops', 'l9'));
      for (let i = 8; i >= 0; i--) symlinkSync(`l${i + 1}`, join(dir, 'hops', `l${i}`));
      symlinkSync('l0', join(dir, 'hops', 'node'));
      expect(probe('failed', join(dir, 'hops'))).toMatchObject({
        untrusted: expect.arrayContaining([{ path: tmpdir(), uid: 0, mode: '1777' }]),
      });
      expect(ran()).toBe(false);
      // As many links as the kernel follows (40: one more is ELOOP, and PATH skips that node), all root's: trusted.
      mkdirSync(join(dir, 'long'), { mode: 0o755 });
      symlinkSync(join(dir, 'bin', 'node'), join(dir, 'long', `l${HOST_NODE_MAX_HOPS - 1}`));
      for (let i = HOST_NODE_MAX_HOPS - 2; i >= 1; i--) symlinkSync(`l${i + 1}`, join(dir, 'long', `l${i}`));
      symlinkSync('l1', join(dir, 'long', 'node'));
      expect(probe('failed', join(dir, 'long'))).toMatchObject({ realPath: join(dir, 'bin', 'node'), version: 'v18.20.4' });
    });

    it('fails closed: a find that fails (one without -printf, say) leaves the binary unrun and unchecked', () => {
      mkdirSync(join(dir, 'badfind'), { mode: 0o755 });
      writeFileSync(join(dir, 'badfind', 'find'), "#!/bin/sh\necho 'find: unknown predicate -printf' >&2\nexit 1\n", { mode: 0o755 });
      expect(probe('failed', `${join(dir, 'bin')}:${join(dir, 'badfind')}`)).toEqual({
        path: join(dir, 'bin', 'node'),
        realPath: join(dir, 'bin', 'node'),
        untrusted: [],
        unchecked: true,
      });
      expect(ran()).toBe(false);
    });
  });

  it('does not re-run the version check of a node the agent is already linked to, and keeps it', () => {
    const linked = parseHostReading(
      ['', '@@podnet:hostnode', '/usr/bin/node', '/usr/bin/nodejs', 'linked', '@@podnet:runtime', '/usr/bin/node', '@@podnet:end', ''].join(
        '\n',
      ),
    );
    expect(linked.hostNode).toEqual({ path: '/usr/bin/node', linked: true });
    expect(hostNodeProblem(linked.hostNode)).toBeUndefined();
    const t = target();
    expect(planHost(t, installed(t, { hostNode: linked.hostNode, runtimeTarget: linked.runtimeTarget }), artifacts).runtime).toEqual({
      action: 'keep',
      target: '/usr/bin/node',
    });
  });
});

describe('planHost', () => {
  it("links the host's node on a fresh host, and ships nothing 100 MB large", () => {
    const plan = planHost(target(), { ...fresh, hostNode: node18 }, artifacts);
    expect(plan.runtime).toEqual({ action: 'link-host', path: '/usr/bin/node', version: 'v18.20.4' });
    expect(plan.uploads.map((u) => u.name)).toEqual(['podnet-agent.js']);
    expect(plan.service).toBe('start');
  });

  it('ships the runtime when asked to (bundled) or when the host has no usable node', () => {
    expect(planHost(target('bundled'), { ...fresh, hostNode: node18 }, artifacts).runtime).toEqual({
      action: 'ship',
      artifact: artifacts.runtime,
      why: "agentRuntime is 'bundled'",
    });
    expect(planHost(target(), fresh, artifacts).runtime.action).toBe('ship');
  });

  it('keeps a runtime already in place, and restarts the agent when the runtime changes', () => {
    const t = target();
    const linked = installed(t, { hostNode: node18, runtimeTarget: '/usr/bin/node' });
    const same = planHost(t, linked, artifacts);
    expect(same.runtime).toEqual({ action: 'keep', target: '/usr/bin/node' });
    expect(same.service).toBe('none');
    const toBundled = planHost(target('bundled'), { ...linked, config: target('bundled').config }, artifacts);
    expect(toBundled.runtime.action).toBe('ship');
    expect(toBundled.service).toBe('restart');
  });

  it("refuses a host where another network's agent runs, and plans the removal of a dead one's leftovers", () => {
    const traces = (blue: string) => ({ units: { blue }, configs: ['blue'], statuses: ['blue'], nftTables: ['podnet_blue'] });
    const withBlue = (blue: string): HostReading => ({ ...fresh, hostNode: node18, live: { ...fresh.live, podnetTraces: traces(blue) } });
    expect(() => planHost(target(), withBlue('active'), artifacts)).toThrow(OtherNetworkRunningError);
    expect(() => planHost(target(), withBlue('active'), artifacts)).toThrow(
      /already runs podnet network 'blue'.*destroy 'blue' on this host first/,
    );
    const plan = planHost(target(), withBlue('inactive'), artifacts);
    expect(plan.otherNetworks.map((o) => [o.network, o.running, o.hasConfig])).toEqual([['blue', false, true]]);
    expect(hostPlanJson(plan).otherNetworks).toEqual([
      {
        network: 'blue',
        unitState: 'inactive',
        teardown: true,
        pieces: ['podnet-blue.service (inactive)', 'config', 'status', 'nft table podnet_blue'],
      },
    ]);
    // Drift says the same, as its own kinds.
    const kinds = (blue: string) =>
      hostDrift(target(), withBlue(blue), artifacts).differences.filter((d) => d.kind.startsWith('other-network'));
    expect(kinds('inactive').map((d) => [d.kind, d.action, d.subject])).toEqual([['other-network', 'delete', 'blue']]);
    expect(kinds('active').map((d) => [d.kind, d.action, d.subject])).toEqual([['other-network-running', 'report', 'blue']]);
  });

  it("removes a dead network's leftovers with its own teardown, by name only where this network's own state may be", () => {
    const blueTraces = { units: { blue: 'inactive' }, configs: ['blue'], statuses: [], nftTables: ['podnet_blue'] };
    const [blue] = otherNetworks('cluster', blueTraces, false);
    const alone = removeOtherNetworkScript(blue!);
    expect(alone).toContain('systemctl --no-reload disable --now -q podnet-blue.service');
    expect(alone).toContain(
      'rc=0; /usr/local/lib/podnet/node /usr/local/lib/podnet/podnet-agent.js teardown --config /etc/podnet/blue.json || rc=$?',
    );
    expect(alone).toMatch(/rm -f \/etc\/podnet\/blue\.json .*\/etc\/systemd\/system\/podnet-blue\.service /);
    execFileSync('sh', ['-n', '-c', alone]);
    // This network's unit failed (or waits to restart) with its record there: its devices,
    // routes and pins still carry traffic, so blue's teardown does not run at all.
    const t = target();
    const failed = installed(t, {
      unit: { activeState: 'failed', unitFileState: 'enabled', loadState: 'loaded' },
      hostNode: node18,
      runtimeTarget: '/usr/bin/node',
      live: { ...underlayOnly(true), owned: EMPTY_RECORD, podnetTraces: { ...blueTraces, configs: ['blue', 'cluster'] } },
    });
    const plan = planHost(t, failed, artifacts);
    expect(plan.service).toBe('start');
    expect(plan.otherNetworks.map((o) => [o.network, o.teardown])).toEqual([['blue', false]]);
    expect(hostPlanJson(plan).otherNetworks[0]!.teardown).toBe(false);
    const shared = removeOtherNetworkScript(plan.otherNetworks[0]!);
    expect(shared).not.toContain('teardown --config');
    execFileSync('sh', ['-n', '-c', shared]);
    const lines = shared.split('\n');
    expect(lines).toContain('nft delete table ip podnet_blue 2>/dev/null || :');
    // FORWARD rules by their comment, whatever CIDR they name; the record goes with the named files.
    expect(shared).toContain(`iptables-nft-save -t filter 2>/dev/null | grep -F -e '--comment "podnet blue"'`);
    expect(shared).toContain('eval "iptables-legacy -w $rule"');
    expect(shared).toMatch(/rm -f \/etc\/cni\/net\.d\/10-podnet-blue\.conflist .*\/run\/podnet\/blue\.owned\.json/);
    // As destroy does: network managers' files go, each manager reloaded.
    expect(lines).toContain(
      'if [ -f /etc/systemd/network/10-podnet-blue.network ]; then rm -f /etc/systemd/network/10-podnet-blue.network; networkctl reload >/dev/null 2>&1 || :; fi',
    );
    expect(lines).toContain(
      'if [ -f /etc/NetworkManager/conf.d/podnet-blue.conf ]; then rm -f /etc/NetworkManager/conf.d/podnet-blue.conf; nmcli general reload conf >/dev/null 2>&1 || :; fi',
    );
    const [orphan] = otherNetworks('cluster', { units: {}, configs: [], statuses: [], nftTables: ['podnet_x'] }, false);
    expect(removeOtherNetworkScript(orphan!)).toBe('set -e\nnft delete table ip podnet_x 2>/dev/null || :');
  });

  it("falls back to names when the other network's teardown cannot read its config (a config an older podnet wrote)", () => {
    const [blue] = otherNetworks('cluster', { units: {}, configs: ['blue'], statuses: [], nftTables: [] }, false);
    const script = removeOtherNetworkScript(blue!);
    const dir = mkdtempSync(join(tmpdir(), 'podnet-other-'));
    try {
      // Stand-ins for the host's commands: the agent exits as it does on a config it rejects;
      // iptables-nft-save lists one of blue's rules and one of someone else's.
      const bin = join(dir, 'bin');
      mkdirSync(bin);
      const stub = (name: string, body: string) => writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
      stub('node', `echo "podnet-agent: cannot read $4: bad" >&2; exit ${TEARDOWN_CONFIG_UNREADABLE}`);
      stub(
        'iptables-nft-save',
        `echo '-A FORWARD -s 10.244.0.0/16 -m comment --comment "podnet blue" -j ACCEPT'; echo '-A FORWARD -s 10.9.0.0/16 -j ACCEPT'`,
      );
      stub('iptables-nft', `echo "$*" >> ${dir}/deleted`);
      for (const n of ['systemctl', 'nft', 'rm', 'networkctl', 'nmcli']) stub(n, 'exit 0');
      const local = script.replace(/\/usr\/local\/lib\/podnet\/node/g, `${bin}/node`);
      const out = execFileSync('sh', ['-c', local], { env: { PATH: `${bin}:/usr/bin:/bin` }, encoding: 'utf8' });
      expect(out.split('\n')).toContain('@by-name');
      expect(readFileSync(join(dir, 'deleted'), 'utf8')).toBe(
        '-w -D FORWARD -s 10.244.0.0/16 -m comment --comment podnet blue -j ACCEPT\n',
      );
      // Any other failure of the teardown fails the removal.
      stub('node', 'exit 1');
      expect(() => execFileSync('sh', ['-c', local], { env: { PATH: `${bin}:/usr/bin:/bin` }, stdio: 'pipe' })).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails the host, not the run, when the host must bring its own node and cannot', () => {
    expect(() => planHost(target('host'), fresh, artifacts)).toThrow(RuntimeUnavailableError);
  });

  it('reloads systemd only when it holds an old definition of the unit', () => {
    const t = target();
    expect(planHost(t, { ...fresh, hostNode: node18 }, artifacts).daemonReload).toBe(false);
    const changedUnit = installed(t, {
      unitFile: t.unit.replace('Restart=', '# Restart='),
      runtimeTarget: '/usr/bin/node',
      hostNode: node18,
    });
    expect(planHost(t, changedUnit, artifacts).daemonReload).toBe(true);
    // Removed by hand after a reload: systemd no longer knows it, start loads the new file.
    const gone = installed(t, {
      unitFile: undefined,
      unit: { activeState: 'inactive', unitFileState: '', loadState: 'not-found' },
      runtimeTarget: '/usr/bin/node',
      hostNode: node18,
    });
    expect(planHost(t, gone, artifacts).daemonReload).toBe(false);
    // Removed by hand without a reload: systemd still runs the old definition.
    const stale = installed(t, { unitFile: undefined, runtimeTarget: '/usr/bin/node', hostNode: node18 });
    expect(planHost(t, stale, artifacts).daemonReload).toBe(true);
  });
});

describe(`plan --json (${PLAN_SCHEMA})`, () => {
  it("names the runtime step and artifacts by remote path, never this machine's paths", () => {
    const shipped = hostPlanJson(planHost(target('bundled'), fresh, artifacts));
    expect(shipped.runtime).toEqual({
      action: 'ship',
      name: 'node',
      remotePath: artifacts.runtime.remotePath,
      why: "agentRuntime is 'bundled'",
    });
    expect(shipped.uploads).toEqual([{ name: 'podnet-agent.js', remotePath: artifacts.agent.remotePath }]);
    expect(JSON.stringify(shipped)).not.toContain('/dist/');
    expect(hostPlanJson(planHost(target(), { ...fresh, hostNode: node18 }, artifacts)).runtime).toEqual({
      action: 'link-host',
      path: '/usr/bin/node',
      version: 'v18.20.4',
    });
  });
});

describe('drift of the runtime', () => {
  const kinds = (t: HostTarget, r: HostReading) =>
    hostDrift(t, r, artifacts)
      .differences.map((d) => d.kind)
      .filter((k) => k.startsWith('runtime'));
  it('is clean while the agent runs on the node it should', () => {
    const t = target();
    expect(kinds(t, installed(t, { hostNode: { path: '/usr/bin/node', linked: true }, runtimeTarget: '/usr/bin/node' }))).toEqual([]);
  });
  it("reports a host whose node went away (auto: podnet's own is due), or one that cannot run the agent at all (host)", () => {
    const t = target();
    const gone = hostDrift(t, installed(t, { runtimeTarget: '/usr/bin/node' }), artifacts).differences.find(
      (d) => d.kind === 'runtime-mismatch',
    );
    expect(gone).toMatchObject({ expected: artifacts.runtime.remotePath, actual: '/usr/bin/node' });
    const strict = target('host');
    expect(kinds(strict, installed(strict, { runtimeTarget: '/usr/bin/node' }))).toEqual(['runtime-unavailable']);
  });
  it('keeps agentRuntime out of the agent config: a policy change alone restarts nothing', () => {
    expect(target('bundled').config).toBe(target().config);
  });
});

describe('host state is a function of the model alone', () => {
  it('writes no SSH settings into the agent config, so another workstation applies the same bytes', () => {
    const alice = {
      ...referenceSpec,
      ssh: { user: 'root', privateKeyPath: '/home/alice/.ssh/id', knownHostsPath: '/home/alice/.ssh/kh', acceptNewHostKeys: true },
    };
    const ci = {
      ...referenceSpec,
      ssh: { privateKeyPath: '/runner/key', knownHostsPath: '/runner/kh' },
      nodes: referenceSpec.nodes.map((n) => (n.name === 'node1' ? { ...n, ssh: { port: 2222 } } : n)),
    };
    const a = hostTargets(alice, resolveNetwork(alice)).find((t) => t.node === 'node1')!;
    const b = hostTargets(ci, resolveNetwork(ci)).find((t) => t.node === 'node1')!;
    expect(a.config).not.toMatch(/ssh|alice|privateKey|knownHosts|agentRuntime/);
    expect(b.config).toBe(a.config);
    expect(b.configHash).toBe(a.configHash);
    expect(planHost(b, installed(a, { hostNode: node18, runtimeTarget: '/usr/bin/node' }), artifacts)).toMatchObject({
      files: [],
      uploads: [],
      service: 'none',
    });
  });
});

describe('an apply cut between writing the files and the restart', () => {
  const status = (t: HostTarget, edit: Record<string, unknown> = {}) =>
    JSON.stringify({
      schema: 'podnet.dev/agent-status/v1',
      state: 'converged',
      configHash: t.configHash,
      pid: 7,
      version: '0.1.0',
      build: 'build-1',
      network: 'cluster',
      node: t.node,
      passedOver: {},
      peers: [],
      repairs: 0,
      remaining: [],
      ...edit,
    });
  const linked = { hostNode: node18, runtimeTarget: '/usr/bin/node' };

  it('restarts an agent still running the old config though the files match, and drift reports it', () => {
    const t = target();
    const cut = installed(t, { ...linked, status: status(t, { configHash: 'OLDHASH000000000' }) });
    const plan = planHost(t, cut, artifacts);
    expect(plan).toMatchObject({
      files: [],
      uploads: [],
      service: 'restart',
      staleAgent: `the running agent loaded config OLDHASH000000000, the installed one is ${t.configHash}`,
    });
    expect(hostDrift(t, cut, artifacts).differences).toContainEqual({
      kind: 'agent-stale',
      action: 'update',
      subject: 'running agent config',
      expected: t.configHash,
      actual: 'OLDHASH000000000',
    });
  });

  it('restarts an agent of another build once the new bundle is in place (a bundle-only upgrade)', () => {
    const t = target();
    const cut = installed(t, { ...linked, status: status(t, { build: 'build-0' }) });
    expect(planHost(t, cut, artifacts)).toMatchObject({
      service: 'restart',
      staleAgent: 'the running agent is build build-0, the installed one is build-1',
    });
    // (The fixture's live network is empty: its differences are the network's, not the agent's.)
    expect(hostDrift(t, cut, artifacts).differences.filter((d) => d.kind.startsWith('agent'))).toEqual([
      { kind: 'agent-stale', action: 'update', subject: 'running agent build', expected: 'build-1', actual: 'build-0' },
    ]);
  });

  it('restarts an agent whose underlay changed under it (the MTU dropped to 1450), and drift says apply fixes it', () => {
    const t = target();
    const eth0 = {
      device: 'eth0',
      deviceSource: 'detected',
      mtu: 1500,
      mtuSource: 'detected',
      tunnelMtu: 1480,
      tunnelMtuSource: 'detected',
    };
    const live = { ...underlayOnly(true), links: [{ name: 'eth0', ifindex: 2, mtu: 1450, up: true }] };
    const moved = installed(t, { ...linked, live, status: status(t, { underlay: eth0 }) });
    expect(planHost(t, moved, artifacts)).toMatchObject({
      files: [],
      service: 'restart',
      staleAgent:
        'the running agent uses eth0 (detected), mtu 1500 (detected), tunnel mtu 1480 (underlay - 20), the host now has eth0 (detected), mtu 1450 (detected), tunnel mtu 1430 (underlay - 20)',
    });
    expect(hostDrift(t, moved, artifacts).differences.filter((d) => d.kind === 'underlay-changed')).toEqual([
      {
        kind: 'underlay-changed',
        action: 'update',
        subject: 'eth0',
        expected: 'eth0 (detected), mtu 1450 (detected), tunnel mtu 1430 (underlay - 20)',
        actual: 'agent uses eth0 (detected), mtu 1500 (detected), tunnel mtu 1480 (underlay - 20)',
      },
    ]);
    // Same underlay, found again: nothing to restart.
    const same = installed(t, { ...linked, status: status(t, { underlay: eth0 }) });
    expect(planHost(t, same, artifacts)).toMatchObject({ service: 'none' });
  });

  it('changes nothing when what runs is what is installed', () => {
    const t = target();
    const fine = installed(t, { ...linked, status: status(t) });
    expect(planHost(t, fine, artifacts)).toMatchObject({ service: 'none' });
    expect(planHost(t, fine, artifacts).staleAgent).toBeUndefined();
    expect(hostDrift(t, fine, artifacts).differences.filter((d) => d.kind.startsWith('agent'))).toEqual([]);
  });
});
