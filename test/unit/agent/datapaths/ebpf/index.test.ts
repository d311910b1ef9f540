import { EbpfDatapath, makeEbpfDatapathFactory } from '../../../../../agent/datapaths/ebpf/index';
import type { Runner } from '../../../../../agent/host/runner';
import { node1Host } from '../node1-host';

const host = node1Host;

/** A fake host: answers the commands EbpfDatapath runs and records them. */
function fakeHost(opts: { tunnel?: 'absent' | 'tun' | 'ipip' } = {}) {
  const calls: { argv: string; input?: string }[] = [];
  let tunnel = opts.tunnel ?? 'absent';
  const run: Runner = async (file, args, o) => {
    const argv = [file, ...args].join(' ');
    calls.push({ argv, input: o?.input });
    const ok = (stdout = '') => ({ code: 0, stdout, stderr: '' });
    if (argv === 'ip -json -d link show dev flannel.ipip') {
      return tunnel === 'absent'
        ? { code: 1, stdout: '', stderr: 'Device "flannel.ipip" does not exist.' }
        : ok(JSON.stringify([{ ifname: 'flannel.ipip', linkinfo: { info_kind: tunnel } }]));
    }
    if (argv === 'ip tuntap add dev flannel.ipip mode tun') {
      tunnel = 'tun';
      return ok();
    }
    if (argv === 'ip link del dev flannel.ipip') {
      tunnel = 'absent';
      return ok();
    }
    if (argv === 'ip -json -4 addr show dev flannel.ipip') return ok('[{"addr_info":[]}]');
    if (argv.includes(' attach ')) return ok('{"egress":"adopted","ingress":"adopted"}');
    if (argv.includes(' counters '))
      return ok(
        JSON.stringify({
          peers: [{ address: '192.168.0.82', index: 0, cidrs: ['10.244.2.0/24'], txPackets: 1, txBytes: 2, rxPackets: 3, rxBytes: 4 }],
          drops: { noPeer: 1, unknownSource: 1, malformed: 0, notIpv4: 9, error: 0, unconfigured: 0 },
          dropped: 11,
        }),
      );
    if (argv.startsWith('ip -json link show dev cni0')) return { code: 1, stdout: '', stderr: 'no cni0' };
    return ok();
  };
  return { run, calls, argvs: () => calls.map((c) => c.argv) };
}

const opts = (run: Runner) => ({ run, loaderPath: '/opt/podnet/podnet-bpf', pinDir: '/tmp/not-sys/podnet', podSyncIntervalMs: 0 });

describe('EbpfDatapath', () => {
  it('creates the TUN, sets MTU and address, then attaches through the loader', async () => {
    const h = fakeHost();
    const d = new EbpfDatapath(host, opts(h.run));
    // /tmp/not-sys is no bpffs and not under /sys/fs/bpf: ensure must refuse with a clear message.
    await expect(d.ensure()).rejects.toThrow(/not on a bpf filesystem/);
    expect(h.argvs()).toEqual(
      expect.arrayContaining([
        'ip tuntap add dev flannel.ipip mode tun',
        'ip link set dev flannel.ipip mtu 1480 up',
        'ip addr add 10.244.1.0/32 dev flannel.ipip',
      ]),
    );
    expect(h.argvs().some((a) => a.includes(' attach '))).toBe(false);
  });

  it('never mounts a bpffs itself: in its unit that mount and its pins would die with the agent (review finding 21)', async () => {
    const h = fakeHost(); // /proc/self/mounts lists no bpffs
    const d = new EbpfDatapath(host, { ...opts(h.run), pinDir: '/sys/fs/bpf/podnet' });
    await expect(d.ensure()).rejects.toThrow(/no bpffs is mounted on \/sys\/fs\/bpf, and the agent's unit mounts the host's/);
    expect(h.argvs().some((a) => a.startsWith('mount') || a.includes(' attach '))).toBe(false);
  });

  it('replaces a non-TUN device of the same name', async () => {
    const h = fakeHost({ tunnel: 'ipip' });
    await new EbpfDatapath(host, opts(h.run)).ensure().catch(() => undefined);
    const a = h.argvs();
    expect(a.indexOf('ip link del dev flannel.ipip')).toBeLessThan(a.indexOf('ip tuntap add dev flannel.ipip mode tun'));
  });

  it('syncs peers in place (without itself) and reports counters by node', async () => {
    const h = fakeHost();
    const d = new EbpfDatapath(host, opts(h.run));
    await d.setPeers([
      { node: 'node2', address: '192.168.0.82', podCidr: '10.244.2.0/24' },
      { node: 'master', address: '192.168.0.80', podCidr: '10.244.0.0/24' },
    ]);
    const sync = h.calls.find((c) => c.argv.endsWith('peers-sync'))!;
    expect(sync.argv).toBe('/opt/podnet/podnet-bpf --pin-dir /tmp/not-sys/podnet peers-sync');
    expect(sync.input).toBe('10.244.0.0/24 192.168.0.80\n10.244.2.0/24 192.168.0.82\n');
    expect(await d.counters()).toEqual({
      peers: [{ node: 'node2', txPackets: 1, txBytes: 2, rxPackets: 3, rxBytes: 4 }],
      dropped: 2,
      drops: {
        noPeer: 1,
        unknownSource: 1,
        malformed: 0,
        notIpv4: 9,
        error: 0,
        unconfigured: 0,
        ecn: 0,
        fragNeeded: 0,
        fragNeededForeign: 0,
      },
    });
  });

  it('refuses an invalid peer set before touching the maps', async () => {
    const h = fakeHost();
    await expect(
      new EbpfDatapath(host, opts(h.run)).setPeers([{ node: 'x', address: '192.168.0.9', podCidr: '10.244.9.1/24' }]),
    ).rejects.toThrow(/host bits/);
    expect(h.calls).toHaveLength(0);
  });

  it('probe explains a missing loader without running anything', async () => {
    const h = fakeHost();
    const r = await makeEbpfDatapathFactory({ run: h.run, loaderPath: '/nonexistent/podnet-bpf' }).probe(host);
    expect(r).toEqual({ outcome: 'failed', reason: expect.stringMatching(/loader .* is missing/) });
    expect(h.calls).toHaveLength(0);
  });
});
