// VM lab hosts: qemu's command line (no network but the tap on the lab switch, ever) and the
// quoting of commands run over SSH.
import type { HostState } from '../../../src/lab/lab-state';
import { qemuArgs, shellJoin } from '../../../src/lab/vm-host';

const host: HostState = {
  name: 'node1',
  index: 1,
  address: '192.168.0.81',
  netns: 'pn-node1',
  machine: 'pn-node1',
  dir: '/var/lib/podnet/lab/pn/hosts/node1',
  rootDir: '/var/lib/podnet/lab/pn/hosts/node1/root',
  bpf: true,
  vm: { kernel: '6.1.0-57-amd64' },
};
const image = { kernelVersion: '6.1.0-57-amd64', kernel: '/c/vmlinuz', initrd: '/c/initrd.img', layer: '/c/layer' };

describe('VM lab host', () => {
  it("gives qemu no default devices and no network but the host's tap, with its fixed MAC", () => {
    for (const accel of ['kvm', 'tcg'] as const) {
      const argv = qemuArgs(host, image, accel, 'h1');
      expect(argv).toContain('-nodefaults');
      expect(argv.filter((a) => a === '-netdev')).toHaveLength(1);
      expect(argv[argv.indexOf('-netdev') + 1]).toBe('tap,id=underlay,ifname=h1,script=no,downscript=no');
      expect(argv.join(' ')).not.toMatch(/(^| |=)user[,= ]|-nic|hostfwd/);
      expect(argv[argv.indexOf('-device') + 1]).toBe('virtio-net-pci,netdev=underlay,mac=02:70:6e:00:00:51');
      expect(argv[argv.indexOf('-accel') + 1]).toBe(accel === 'kvm' ? 'kvm' : 'tcg,thread=multi');
    }
  });

  it('quotes a command for the remote shell so that it runs exactly as given', () => {
    expect(shellJoin(['ip', '-4', 'route'])).toBe('ip -4 route');
    expect(shellJoin(['sh', '-c', "echo 'a b'; exit 3"])).toBe(`sh -c 'echo '\\''a b'\\''; exit 3'`);
    expect(shellJoin(['printf', '%s\\n', '$HOME', ''])).toBe(`printf '%s\\n' '$HOME' ''`);
  });
});
