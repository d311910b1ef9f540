// CNI integration with a real container runtime: podman (Debian 12's 4.3, CNI network backend)
// creates containers on lab hosts from the conflist podnet's agent installed. Containers reach
// each other across the overlay, the workstation through masquerade, and a published port
// through portmap; addresses are released; an MTU change reaches new containers; ipMasq never
// NATs pod-to-pod traffic; a foreign config sorting first is reported and left alone.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildManifest, desiredHostState, resolveNetwork, type NetworkSpec } from '../../src/model';
import { labExec, podAdd, podDel, podExec, wsExec } from '../../src/lab';
import { describeLab, testLabName, withLab } from './lab-support';
import { runPodnet } from './engine-support';

const LAB = testLabName('pncni');
jest.setTimeout(240_000);

const spec = (patch: Partial<NetworkSpec> = {}): NetworkSpec => ({
  name: 'cluster',
  clusterCidr: '10.244.0.0/16',
  subnetLength: 24,
  backend: { type: 'ipip', datapath: 'auto' },
  nodes: [
    { name: 'master', address: '192.168.0.80' },
    { name: 'node1', address: '192.168.0.81' },
    { name: 'node2', address: '192.168.0.82' },
  ],
  ...patch,
});

/** A container's root: the host's /usr (read-only, bind-mounted by podman) under an empty tree. */
const ROOTFS = '/srv/pncni-root';
const PREPARE = [
  'set -e',
  'mkdir -p /etc/containers',
  // Debian's podman would pick netavark if it were installed; this test is about CNI.
  `printf '[network]\\nnetwork_backend = "cni"\\n[engine]\\nevents_logger = "file"\\ncgroup_manager = "cgroupfs"\\n' > /etc/containers/containers.conf`,
  // The host's root is an overlayfs: the overlay storage driver cannot stack on it.
  `printf '[storage]\\ndriver = "vfs"\\nrunroot = "/run/containers/storage"\\ngraphroot = "/var/lib/containers/storage"\\n' > /etc/containers/storage.conf`,
  `mkdir -p ${ROOTFS}/usr ${ROOTFS}/etc ${ROOTFS}/tmp ${ROOTFS}/data`,
  `for d in bin sbin lib lib64; do [ -L ${ROOTFS}/$d ] || ln -s usr/$d ${ROOTFS}/$d; done`,
  `echo 'root:x:0:0:root:/root:/bin/bash' > ${ROOTFS}/etc/passwd; echo 'root:x:0:' > ${ROOTFS}/etc/group`,
  // 1 MiB of random bytes to serve, and a server that sends it and logs who asked.
  'mkdir -p /srv/pncni-data && head -c 1048576 /dev/urandom > /srv/pncni-data/blob',
  `cat > /srv/pncni-data/serve.js <<'EOF'
const net = require('net'); const fs = require('fs');
net.createServer((s) => { console.log('from ' + s.remoteAddress); fs.createReadStream('/data/blob').pipe(s); }).listen(8080);
EOF`,
].join('\n');

describeLab('CNI config with a real container runtime (podman)', () => {
  withLab(LAB, { hosts: 3, extraPackages: ['podman'] });
  const work = mkdtempSync(join(tmpdir(), 'pncni-'));
  let missing: string | undefined;

  const manifestFor = (patch: Partial<NetworkSpec> = {}): string => {
    const file = join(work, `manifest-${Date.now()}.json`);
    writeFileSync(file, JSON.stringify(buildManifest(spec(patch))));
    return file;
  };
  async function must(host: string, command: string, input?: string): Promise<string> {
    const r = await labExec(LAB, host, ['sh', '-c', command], { timeoutMs: 120_000, ...(input !== undefined ? { input } : {}) });
    if (r.code !== 0) throw new Error(`${host}: ${command}\nexit ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }
  const podman = (host: string, args: string): Promise<string> => must(host, `podman ${args}`);
  /** Starts a container on the network; returns its eth0 address. */
  async function runContainer(host: string, ctr: string, extra = '', command = 'sleep 600'): Promise<string> {
    // Lab hosts mount cgroup v1 controllers read-only: podman runs the container without cgroups.
    // `--rootfs` is a flag: the first argument after it is the root, then the command.
    await podman(
      host,
      `run -d --name ${ctr} --network cluster --cgroups=disabled --cap-add NET_RAW -v /usr:/usr:ro -v /srv/pncni-data:/data:ro ${extra} --rootfs ${ROOTFS} ${command}`,
    );
    return (await podman(host, `exec ${ctr} ip -4 -o addr show dev eth0`)).match(/inet (\S+)\//)![1]!;
  }
  async function eth0Mtu(host: string, ctr: string): Promise<number> {
    return Number((await podman(host, `exec ${ctr} cat /sys/class/net/eth0/mtu`)).trim());
  }
  /** Fetches the 1 MiB blob from ip:port inside a container; returns its sha256. */
  async function fetchHash(host: string, ctr: string, ip: string, port: number): Promise<string> {
    return (await podman(host, `exec ${ctr} bash -c 'cat < /dev/tcp/${ip}/${port} | sha256sum'`)).split(' ')[0]!;
  }
  const skipIfMissing = (): boolean => {
    if (missing) process.stderr.write(`[cni test skipped] ${missing}\n`);
    return missing !== undefined;
  };

  let blobHash = '';
  const ips: Record<string, string> = {};

  beforeAll(async () => {
    const which = await labExec(LAB, 'node1', [
      'sh',
      '-c',
      'command -v podman && ls /usr/lib/cni/bridge /usr/lib/cni/portmap /usr/lib/cni/host-local',
    ]);
    if (which.code !== 0) {
      missing = `podman or Debian's CNI plugins are missing on the lab hosts: ${which.stderr.trim() || which.stdout.trim()}`;
      return;
    }
    for (const h of ['node1', 'node2']) await must(h, PREPARE);
    blobHash = (await must('node2', 'sha256sum /srv/pncni-data/blob')).split(' ')[0]!;
    // Server blobs differ per host; containers on node1 fetch node2's.
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('apply installs the conflist (making /etc/cni/net.d where it is missing), and drift is clean', async () => {
    if (skipIfMissing()) return;
    // Debian's podman ships /etc/cni/net.d/87-podman-bridge.conflist; master and node1 play hosts without it.
    for (const h of ['master', 'node1']) await must(h, 'rm -rf /etc/cni');
    const manifest = manifestFor();
    const apply = await runPodnet(['apply', '--manifest', manifest, '--lab', LAB]);
    expect(apply).toMatchObject({ code: 0 });
    const want = desiredHostState(resolveNetwork(spec()), 'node1').cni;
    expect(await must('node1', `cat ${want.path}`)).toBe(want.content);
    const drift = await runPodnet(['drift', '--manifest', manifest, '--lab', LAB]);
    expect(drift.code).toBe(0);
  });

  it('containers on node1 and node2 reach each other across the overlay (ping, TCP with a checksum), keeping their pod source', async () => {
    if (skipIfMissing()) return;
    ips.a = await runContainer('node1', 'ca');
    ips.b = await runContainer('node2', 'cb', '', 'node /data/serve.js');
    expect(ips.a).toMatch(/^10\.244\.1\.\d+$/);
    expect(ips.b).toMatch(/^10\.244\.2\.\d+$/);
    expect(await eth0Mtu('node1', 'ca')).toBe(1480);
    await podman('node1', `exec ca ping -c 3 -W 2 ${ips.b}`);
    expect(await fetchHash('node1', 'ca', ips.b, 8080)).toBe(blobHash);
    // The server saw the client's own pod address: pod-to-pod traffic is never NATed.
    expect(await podman('node2', 'logs cb')).toMatch(new RegExp(`from (::ffff:)?${ips.a}\\b`));
  });

  it('a container reaches the workstation through masquerade', async () => {
    if (skipIfMissing()) return;
    // The workstation has no route to 10.244.0.0/16: an answer proves the source was node1's.
    const server = wsExec(
      LAB,
      [
        'timeout',
        '20',
        process.execPath,
        '-e',
        "require('net').createServer((s) => { console.log(s.remoteAddress); s.end('hello\\n'); process.exit(0); }).listen(18080, '192.168.0.1')",
      ],
      { timeoutMs: 30_000 },
    );
    await new Promise((r) => setTimeout(r, 800));
    const got = await podman('node1', `exec ca bash -c 'exec 3<>/dev/tcp/192.168.0.1/18080; cat <&3'`);
    expect(got.trim()).toBe('hello');
    expect((await server).stdout.trim()).toBe('192.168.0.81');
  });

  it('a published host port works through portmap; removing that container leaves the others reachable', async () => {
    if (skipIfMissing()) return;
    await runContainer('node2', 'web', '-p 18081:8080', 'node /data/serve.js');
    // The server needs a moment to listen after the container starts.
    let hash = '';
    for (let i = 0; i < 20 && hash !== blobHash; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 250));
      hash = (await wsExec(LAB, ['bash', '-c', 'cat < /dev/tcp/192.168.0.82/18081 | sha256sum'], { timeoutMs: 30_000 })).stdout.split(
        ' ',
      )[0]!;
    }
    expect(hash).toBe(blobHash);
    await podman('node2', 'rm -f -t 0 web');
    // Removing a container must not change cni0's MAC under the others (the gateway MAC they
    // cached): cb, on the same node, still answers at once.
    await podman('node1', `exec ca ping -c 2 -W 2 ${ips.b}`);
  });

  it('deleting a container releases its address', async () => {
    if (skipIfMissing()) return;
    const ip = await runContainer('node1', 'gone');
    const leases = '/var/lib/cni/networks/cluster';
    expect(await must('node1', `ls ${leases}`)).toContain(ip);
    await podman('node1', 'rm -f -t 0 gone');
    expect(await must('node1', `ls ${leases}`)).not.toContain(ip);
  });

  it("'podnet lab pod add' runs the installed conflist through CNI, as a runtime would", async () => {
    if (skipIfMissing()) return;
    const pod = await podAdd(LAB, 'node1', 'labpod');
    expect(pod.config).toBe('/etc/cni/net.d/10-podnet-cluster.conflist');
    const ping = await podExec(LAB, 'node1', 'labpod', ['ping', '-c', '2', '-W', '2', ips.b!]);
    expect(ping.code).toBe(0);
    await podDel(LAB, 'node1', 'labpod');
    expect(await must('node1', 'ls /var/lib/cni/networks/cluster')).not.toContain(pod.ip);
  });

  it('ipMasq false never NATs pod-to-pod traffic, nor does switching back leave a rule', async () => {
    if (skipIfMissing()) return;
    for (const ipMasq of [false, true]) {
      expect(await runPodnet(['apply', '--manifest', manifestFor({ ipMasq }), '--lab', LAB])).toMatchObject({ code: 0 });
      const ip = await runContainer('node1', `m${String(ipMasq)}`);
      expect(await fetchHash('node1', `m${String(ipMasq)}`, ips.b!, 8080)).toBe(blobHash);
      expect(await podman('node2', 'logs cb')).toMatch(new RegExp(`from (::ffff:)?${ip}\\b`));
      // No bridge-plugin masquerade chain for any pod (iptables-nft's nat table).
      expect(await must('node1', 'iptables-save -t nat')).not.toMatch(/-s 10\.244\.1\.\d+\/32 .*-j CNI-/);
    }
  });

  it('after an MTU change new containers get the new MTU; plan says existing ones keep theirs', async () => {
    if (skipIfMissing()) return;
    const manifest = manifestFor({ mtu: 1400 });
    const plan = await runPodnet(['plan', '--manifest', manifest, '--lab', LAB]);
    expect(plan.stdout).toContain('keep its settings until re-created');
    expect(await runPodnet(['apply', '--manifest', manifest, '--lab', LAB])).toMatchObject({ code: 0 });
    await runContainer('node1', 'small');
    expect(await eth0Mtu('node1', 'small')).toBe(1400);
    expect(await eth0Mtu('node1', 'ca')).toBe(1480);
    expect(await fetchHash('node1', 'small', ips.b!, 8080)).toBe(blobHash);
  });

  it('a foreign conflist sorting first is reported by plan and drift and never deleted; a removed directory or edited file comes back', async () => {
    if (skipIfMissing()) return;
    const manifest = manifestFor({ mtu: 1400 });
    await must(
      'node1',
      `printf '{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"loopback"}]}' > /etc/cni/net.d/05-other.conflist`,
    );
    const drift = await runPodnet(['drift', '--manifest', manifest, '--lab', LAB, '--json']);
    expect(drift.code).toBe(2);
    const node1 = (
      JSON.parse(drift.stdout) as { hosts: Array<{ node: string; differences: Array<{ kind: string; subject: string }> }> }
    ).hosts.find((h) => h.node === 'node1')!;
    expect(node1.differences).toEqual([
      expect.objectContaining({ kind: 'cni-config-shadowed', subject: '/etc/cni/net.d/05-other.conflist' }),
    ]);
    const plan = await runPodnet(['plan', '--manifest', manifest, '--lab', LAB]);
    expect(plan.stdout).toContain('05-other.conflist');
    expect(await runPodnet(['apply', '--manifest', manifest, '--lab', LAB])).toMatchObject({ code: 0 });
    expect((await labExec(LAB, 'node1', ['test', '-f', '/etc/cni/net.d/05-other.conflist'])).code).toBe(0);
    await must('node1', 'rm /etc/cni/net.d/05-other.conflist');

    // The agent watches the directory: a removed one, then an edited file, come back at once.
    const want = desiredHostState(resolveNetwork(spec({ mtu: 1400 })), 'node2').cni;
    const repaired = async (): Promise<boolean> => {
      for (let i = 0; i < 25; i++) {
        if ((await labExec(LAB, 'node2', ['cat', want.path])).stdout === want.content) return true;
        await new Promise((r) => setTimeout(r, 200));
      }
      return false;
    };
    await must('node2', 'rm -rf /etc/cni/net.d');
    expect(await repaired()).toBe(true);
    await must('node2', `echo '{}' > ${want.path}`);
    expect(await repaired()).toBe(true);
    expect((await runPodnet(['drift', '--manifest', manifest, '--lab', LAB])).code).toBe(0);
  });

  it('destroy removes the conflist and the directories podnet made, and leaves the rest', async () => {
    if (skipIfMissing()) return;
    for (const [h, c] of [
      ['node1', 'ca'],
      ['node1', 'mfalse'],
      ['node1', 'mtrue'],
      ['node1', 'small'],
      ['node2', 'cb'],
    ] as const)
      await podman(h, `rm -f -t 0 ${c}`);
    expect(await runPodnet(['destroy', '--manifest', manifestFor({ mtu: 1400 }), '--lab', LAB])).toMatchObject({ code: 0 });
    expect((await labExec(LAB, 'master', ['test', '-e', '/etc/cni'])).code).toBe(1);
    // node1's directory now holds podman's cni.lock, and node2 had it before podnet (podman's
    // package ships it): both stay, without podnet's file.
    for (const h of ['node1', 'node2']) expect(await must(h, 'ls -A /etc/cni/net.d')).not.toContain('podnet');
  });
});
