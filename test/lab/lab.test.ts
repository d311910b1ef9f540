// The lab itself: real hosts come up, accept SSH with strict host key checking, are isolated from
// each other and from the machine's network, wire pods with the CNI plugins, and `down` leaves
// nothing behind.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { hostCanLoadBpf, hostRestart, labDown, labExec, labUp, podAdd, podDel, podExec, wsExec, readLab } from '../../src/lab';
import { describeLab, rootRoutes, testLabName, withLab } from './lab-support';

const NAME = testLabName('labtest');

describeLab('podnet lab', () => {
  const routesBefore = rootRoutes();
  const lab = withLab(NAME, { hosts: 3, noBpfHosts: ['node2'] });

  it('boots master, node1 and node2 on the underlay with systemd running', () => {
    const info = lab.info();
    expect(info.hosts.map((h) => [h.name, h.address, h.bpf])).toEqual([
      ['master', '192.168.0.80', true],
      ['node1', '192.168.0.81', true],
      ['node2', '192.168.0.82', false],
    ]);
    expect(info.workstation).toEqual({ netns: `${NAME}-ws`, address: '192.168.0.1' });
  });

  it('accepts an SSH login on every host with strict host key checking against the lab known_hosts', async () => {
    const info = lab.info();
    const known = readFileSync(info.knownHostsPath, 'utf8');
    for (const h of info.hosts) {
      expect(known).toContain(`${h.address} ssh-ed25519 `);
      const r = await lab.ssh(h.name, 'hostname; systemctl is-system-running --wait');
      expect(r).toMatchObject({ code: 0 });
      expect(r.stdout.split('\n').slice(0, 2)).toEqual([h.name, 'running']);
    }
    // Strictness is real: with an empty known_hosts the same login is refused.
    const r = await wsExec(NAME, [
      'ssh',
      '-i',
      info.sshKeyPath,
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'BatchMode=yes',
      'root@192.168.0.81',
      'true',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Host key verification failed/);
  });

  it("gives every host its own identity and a real-host package set, with Debian's Node.js", async () => {
    const ids = new Set<string>();
    for (const h of lab.info().hosts) {
      const r = await labExec(NAME, h.name, [
        'sh',
        '-c',
        'cat /etc/machine-id; node --version | cut -d. -f1; for b in tcpdump iperf3 nft iptables openvpn ping ip sshd; do command -v $b >/dev/null || echo missing-$b; done; test -x /usr/lib/cni/bridge && test -x /usr/lib/cni/host-local || echo missing-cni',
      ]);
      const [id, ...rest] = r.stdout.trim().split('\n');
      ids.add(id!);
      expect(rest).toEqual(['v18']);
    }
    expect(ids.size).toBe(3);
  });

  it('keeps hosts isolated: a file written on node1 is not on node2', async () => {
    expect((await lab.ssh('node1', 'echo hello > /root/isolation-check && cat /root/isolation-check')).stdout).toBe('hello\n');
    expect((await lab.ssh('node2', 'test -e /root/isolation-check && echo LEAK || echo absent')).stdout).toBe('absent\n');
    expect(existsSync(`${lab.info().hosts[1]!.rootDir}/root/isolation-check`)).toBe(true);
  });

  it("has no default route anywhere and adds nothing to the machine's own routes", async () => {
    expect((await wsExec(NAME, ['ip', '-4', 'route'])).stdout.trim()).toBe(
      '192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.1',
    );
    const unreachable = await wsExec(NAME, ['ip', 'route', 'get', '10.244.1.2']);
    expect(unreachable.code).not.toBe(0);
    expect((await labExec(NAME, 'node1', ['ip', '-4', 'route', 'show', 'default'])).stdout).toBe('');
    expect(rootRoutes().filter((r) => /192\.168\.0\.|10\.244\./.test(r))).toEqual(
      routesBefore.filter((r) => /192\.168\.0\.|10\.244\./.test(r)),
    );
  });

  it('lets hosts manage their network: CAP_NET_ADMIN, writable /proc/sys/net, /dev/net/tun', async () => {
    const r = await lab.ssh(
      'node1',
      'sysctl -w net.ipv4.ip_forward=1 && ip tuntap add dev labtun0 mode tun && ip link show labtun0 >/dev/null && ip link del labtun0 && echo ok',
    );
    expect(r).toMatchObject({ code: 0 });
    expect(r.stdout.trim().split('\n').pop()).toBe('ok');
  });

  it('lets BPF hosts load and pin BPF objects in /sys/fs/bpf, and forbids it on --no-bpf hosts', async () => {
    expect((await labExec(NAME, 'node1', ['sh', '-c', 'mount | grep " /sys/fs/bpf type bpf"'])).code).toBe(0);
    expect(await hostCanLoadBpf(NAME, 'node1')).toEqual({ ok: true, detail: 'ok' });
    const denied = await hostCanLoadBpf(NAME, 'node2');
    expect(denied.ok).toBe(false);
    expect(denied.detail).toMatch(/Operation not permitted/);
  });

  it('refuses a pod when the host has no flannel subnet.env, saying so', async () => {
    await expect(podAdd(NAME, 'master', 'nope')).rejects.toThrow(/no \/run\/flannel\/subnet\.env/);
  });

  it('wires pods with the CNI bridge plugin; pods on different nodes cannot reach each other before podnet is applied', async () => {
    for (const [host, i] of [
      ['node1', 1],
      ['node2', 2],
    ] as const) {
      await labExec(NAME, host, [
        'sh',
        '-c',
        `mkdir -p /run/flannel && printf 'FLANNEL_NETWORK=10.244.0.0/16\\nFLANNEL_SUBNET=10.244.${i}.1/24\\nFLANNEL_MTU=1480\\nFLANNEL_IPMASQ=true\\n' > /run/flannel/subnet.env`,
      ]);
    }
    // No CNI config installed yet: the conflist podnet would install, derived from subnet.env.
    expect(await podAdd(NAME, 'node1', 'pod-a')).toEqual({ ip: '10.244.1.2', config: '/run/flannel/subnet.env' });
    expect(await podAdd(NAME, 'node2', 'pod-b')).toEqual({ ip: '10.244.2.2', config: '/run/flannel/subnet.env' });
    const routes = (await podExec(NAME, 'node1', 'pod-a', ['ip', '-4', 'route'])).stdout;
    expect(routes).toContain('default via 10.244.1.1 dev eth0');
    expect(routes).toContain('10.244.0.0/16 via 10.244.1.1 dev eth0');
    expect((await labExec(NAME, 'node1', ['ip', '-o', 'link', 'show', 'cni0'])).stdout).toContain('mtu 1480');
    expect((await podExec(NAME, 'node1', 'pod-a', ['ping', '-c1', '-W2', '10.244.1.1'])).code).toBe(0);
    const cross = await podExec(NAME, 'node1', 'pod-a', ['ping', '-c1', '-W2', '10.244.2.2']);
    expect(cross.code).not.toBe(0);
    expect(cross.stdout).toMatch(/Unreachable|100% packet loss/);
    await podDel(NAME, 'node1', 'pod-a');
    await podDel(NAME, 'node1', 'pod-a'); // idempotent
    expect((await labExec(NAME, 'node1', ['ip', 'netns', 'list'])).stdout).toBe('');
  });

  it('reboots a host like a real one: same disk and keys, fresh network state', async () => {
    const before = (await labExec(NAME, 'node2', ['cat', '/etc/machine-id'])).stdout;
    await labExec(NAME, 'node2', ['sh', '-c', 'ip link add labbr0 type bridge && echo kept > /root/disk-check']);
    await hostRestart(NAME, 'node2');
    const r = await lab.ssh('node2', 'cat /etc/machine-id /root/disk-check; ip -o link show labbr0 2>&1 || true');
    expect(r.stdout).toBe(`${before}kept\nDevice "labbr0" does not exist.\n`);
  }, 60_000);

  it('refuses to start a lab whose name is taken', async () => {
    await expect(labUp({ name: NAME })).rejects.toThrow(/is up or half made/);
  });

  it('down stops every host and leaves no namespace, mount, link or state behind', async () => {
    const info = lab.info();
    await labDown(NAME);
    const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    expect(netns.split('\n').filter((l) => l.startsWith(`${NAME}-`))).toEqual([]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(info.stateDir);
    const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' });
    expect(links).not.toMatch(new RegExp(`\\b${NAME}-`));
    expect(existsSync(info.stateDir)).toBe(false);
    expect(readLab(NAME)).toBeUndefined();
    expect(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })).not.toContain(`--machine=${NAME}-`);
    for (const h of ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified', '/sys/fs/cgroup']) {
      if (existsSync(h)) expect(readdirSync(h).filter((d) => d.startsWith(`podnet-lab-${NAME}-`))).toEqual([]);
    }
    await labDown(NAME); // idempotent
  }, 60_000);
});
