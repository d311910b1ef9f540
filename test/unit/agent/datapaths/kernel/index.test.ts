// The kernel datapath against a fake Runner: the iproute2 commands it runs (flanneld's ipip
// backend's device, exactly), adopting a right device, replacing a wrong one, its non-peer
// filter (nftables table podnet_ipip: peer-filter.ts, tested on its own in kernel-peer-filter),
// and its probe's three outcomes.
import { KernelDatapath, makeKernelDatapathFactory, PROBE_DEVICE } from '../../../../../agent/datapaths/kernel';
import type { Runner } from '../../../../../agent/host/runner';
import { node1Host } from '../node1-host';

const host = node1Host;

/** The device's state where it exists: MTU, UP, and the tunnel address (node1's right ones by default). */
interface DeviceState {
  mtu?: number;
  up?: boolean;
  address?: string;
}

/** A fake host with flannel.ipip absent, or present as ipip with some local address, or as a TUN. */
function fakeHost(
  device: ({ kind: 'ipip'; local: string } | { kind: 'tun' }) | undefined,
  answers: { probeAdd?: { code: number; stderr: string }; state?: DeviceState } = {},
) {
  const state = { mtu: 1480, up: true, address: '10.244.1.0', ...answers.state };
  const calls: { argv: string; input?: string }[] = [];
  const run: Runner = async (file, args, o) => {
    const argv = [file, ...args].join(' ');
    calls.push({ argv, input: o?.input });
    if (argv === 'ip -json -details addr show dev flannel.ipip') {
      if (!device) return { code: 1, stdout: '', stderr: 'Device "flannel.ipip" does not exist.' };
      const linkinfo =
        device.kind === 'ipip'
          ? { info_kind: 'ipip', info_data: { proto: 'ip4ip4', remote: 'any', local: device.local, ttl: 0, pmtudisc: false } }
          : { info_kind: 'tun' };
      return {
        code: 0,
        stdout: JSON.stringify([
          {
            ifindex: 9,
            ifname: 'flannel.ipip',
            flags: state.up ? ['NOARP', 'UP'] : ['NOARP'],
            mtu: state.mtu,
            linkinfo,
            addr_info: state.address ? [{ family: 'inet', local: state.address, prefixlen: 32 }] : [],
          },
        ]),
        stderr: '',
      };
    }
    if (argv.startsWith(`ip link add ${PROBE_DEVICE}`) && answers.probeAdd) return { ...answers.probeAdd, stdout: '' };
    if (argv === 'nft list table ip podnet_ipip') return { code: 1, stdout: '', stderr: 'Error: No such file or directory' };
    if (argv === 'nft -j list counter ip podnet_ipip unknown_source') {
      return {
        code: 0,
        stdout:
          '{"nftables": [{"counter": {"family": "ip", "name": "unknown_source", "table": "podnet_ipip", "handle": 2, "packets": 2, "bytes": 112}}]}',
        stderr: '',
      };
    }
    return { code: 0, stdout: '', stderr: '' };
  };
  // 3 ECN drops on the device (ip_tunnel_rcv counts them in rx_frame_errors).
  const readSysfs = async (path: string): Promise<string> => {
    calls.push({ argv: `read ${path}` });
    if (path === '/sys/class/net/flannel.ipip/statistics/rx_frame_errors' && device) return '3\n';
    throw new Error(`ENOENT: ${path}`);
  };
  return { run, readSysfs, calls, argvs: () => calls.map((c) => c.argv) };
}

describe('KernelDatapath', () => {
  it('creates flannel.ipip as flanneld does, in one ip -batch, then its non-peer filter', async () => {
    const h = fakeHost(undefined);
    await new KernelDatapath(host, { run: h.run, readSysfs: h.readSysfs }).ensure();
    expect(h.argvs()).toEqual([
      'ip -json -details addr show dev flannel.ipip',
      'ip -force -batch -',
      'nft list table ip podnet_ipip',
      'nft -f -',
    ]);
    expect(h.calls[3]!.input).toContain('ip protocol 4 ip saddr != @peers counter name "unknown_source" drop');
    expect(h.calls[1]!.input).toBe(
      [
        'link add flannel.ipip type ipip remote any local 192.168.0.81 ttl inherit nopmtudisc',
        'link set flannel.ipip mtu 1480',
        'addr replace 10.244.1.0/32 dev flannel.ipip',
        'link set flannel.ipip up',
        '',
      ].join('\n'),
    );
  });

  it("adopts an ipip device with this node's local address: repairs MTU, address and up, never recreates", async () => {
    const h = fakeHost({ kind: 'ipip', local: '192.168.0.81' }, { state: { mtu: 1500, up: false, address: '' } });
    await new KernelDatapath(host, { run: h.run, readSysfs: h.readSysfs }).ensure();
    expect(h.argvs()).not.toContain('ip link del dev flannel.ipip');
    expect(h.calls[1]!.input).toBe(
      'link set flannel.ipip mtu 1480\naddr replace 10.244.1.0/32 dev flannel.ipip\nlink set flannel.ipip up\n',
    );
  });

  it('repairs only what differs: a right device and filter get no write at all (a write would wake its own watcher)', async () => {
    const h = fakeHost({ kind: 'ipip', local: '192.168.0.81' }, { state: { up: false } });
    await new KernelDatapath(host, { run: h.run, readSysfs: h.readSysfs }).ensure();
    expect(h.calls[1]).toEqual({ argv: 'ip -force -batch -', input: 'link set flannel.ipip up\n' });

    const right = fakeHost({ kind: 'ipip', local: '192.168.0.81' });
    const d = new KernelDatapath(host, { run: right.run, readSysfs: right.readSysfs });
    await d.ensure();
    expect(right.argvs()).toEqual(['ip -json -details addr show dev flannel.ipip', 'nft list table ip podnet_ipip', 'nft -f -']); // the filter was missing
  });

  it('replaces a device of another kind or with another local address', async () => {
    for (const device of [{ kind: 'tun' as const }, { kind: 'ipip' as const, local: '192.168.0.99' }]) {
      const h = fakeHost(device);
      await new KernelDatapath(host, { run: h.run, readSysfs: h.readSysfs }).ensure();
      expect(h.argvs().slice(0, 3)).toEqual([
        'ip -json -details addr show dev flannel.ipip',
        'ip link del dev flannel.ipip',
        'ip -force -batch -',
      ]);
      expect(h.calls[2]!.input).toMatch(/^link add flannel.ipip type ipip remote any local 192.168.0.81 ttl inherit nopmtudisc\n/);
    }
  });

  it('says what failed when the batch fails', async () => {
    const run: Runner = async (file, args) =>
      args.includes('-batch')
        ? { code: 1, stdout: '', stderr: 'Error: Unknown device type.\n' }
        : { code: 1, stdout: '', stderr: 'no device' };
    await expect(new KernelDatapath(host, { run }).ensure()).rejects.toThrow('creating flannel.ipip failed: Error: Unknown device type.');
  });

  it('keeps the peers in its filter, counts what the filter and the kernel (ECN) dropped, and teardown deletes the device and the filter', async () => {
    const h = fakeHost({ kind: 'ipip', local: '192.168.0.81' });
    const d = new KernelDatapath(host, { run: h.run, readSysfs: h.readSysfs });
    await d.setPeers([{ node: 'node2', address: '192.168.0.82', podCidr: '10.244.2.0/24' }]);
    expect(h.calls[0]).toEqual({
      argv: 'nft -f -',
      input: 'flush set ip podnet_ipip peers\nadd element ip podnet_ipip peers { 192.168.0.82 }\n',
    });
    // unknownSource from the filter's counter, ecn from the device's rx_frame_errors (ip_tunnel_rcv's ECN drops).
    expect(await d.counters()).toEqual({ peers: [], dropped: 5, drops: { unknownSource: 2, ecn: 3 } });
    h.calls.length = 0;
    await d.teardown();
    expect(h.argvs()).toEqual(['ip link del dev flannel.ipip', 'nft delete table ip podnet_ipip']);
    expect(await new KernelDatapath(host, { run: fakeHost(undefined).run, readSysfs: fakeHost(undefined).readSysfs }).counters()).toEqual({
      peers: [],
      dropped: 2,
      drops: { unknownSource: 2, ecn: 0 },
    }); // no device: no ECN count
  });
});

describe('kernel datapath probe', () => {
  it('is supported when a probe device can be added, and deletes it (and any stale one) again', async () => {
    const h = fakeHost(undefined);
    expect(await makeKernelDatapathFactory({ run: h.run, readSysfs: h.readSysfs }).probe(host)).toEqual({ outcome: 'supported' });
    expect(h.argvs()).toEqual([
      `ip link del ${PROBE_DEVICE}`,
      `ip link add ${PROBE_DEVICE} type ipip remote any local 127.0.0.1`,
      `ip link del ${PROBE_DEVICE}`,
    ]);
  });

  it('is not supported when the kernel has no ipip (iproute2: "Unknown device type")', async () => {
    const h = fakeHost(undefined, { probeAdd: { code: 2, stderr: 'Error: Unknown device type.\n' } });
    expect(await makeKernelDatapathFactory({ run: h.run, readSysfs: h.readSysfs }).probe(host)).toEqual({
      outcome: 'unsupported',
      reason: 'no ipip support in this kernel (ip link add type ipip: Error: Unknown device type.)',
    });
  });

  it('failed when it could not tell (no permission, no ip)', async () => {
    const denied = fakeHost(undefined, { probeAdd: { code: 2, stderr: 'RTNETLINK answers: Operation not permitted\n' } });
    expect(await makeKernelDatapathFactory({ run: denied.run }).probe(host)).toEqual({
      outcome: 'failed',
      reason: 'ip link add type ipip: RTNETLINK answers: Operation not permitted',
    });
    const noIp = fakeHost(undefined, { probeAdd: { code: 127, stderr: '' } });
    expect(await makeKernelDatapathFactory({ run: noIp.run }).probe(host)).toEqual({
      outcome: 'failed',
      reason: 'ip link add type ipip: exit 127',
    });
  });

  it('creates a datapath bound to the host it is given', async () => {
    const h = fakeHost(undefined);
    const d = makeKernelDatapathFactory({ run: h.run, readSysfs: h.readSysfs }).create(
      { ...host, tunnelDevice: 'other.ipip' },
      () => undefined,
    );
    await d.teardown();
    expect(h.argvs()).toEqual(['ip link del dev other.ipip', 'nft delete table ip podnet_ipip']);
  });
});
