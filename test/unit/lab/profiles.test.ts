import { parseProfile } from '../../../src/lab/profiles';
import { routerAddress } from '../../../src/lab/lab-config';
import { replugShell, subnetOf } from '../../../src/lab/netns';

describe('host profile traits', () => {
  it('pmtu<N> puts a router with path MTU N in front of the host, beside the NIC traits', () => {
    expect(parseProfile('pmtu1400')).toMatchObject({ nic: { name: 'eth0', mtu: 1500 }, pathMtu: 1400 });
    expect(parseProfile('ens33-mtu1450-pmtu1400')).toMatchObject({ nic: { name: 'ens33', mtu: 1450 }, pathMtu: 1400 });
    expect(parseProfile('docker')).not.toHaveProperty('pathMtu');
  });

  it('refuses a path MTU below 576 or not below the NIC MTU, naming both', () => {
    expect(() => parseProfile('pmtu500')).toThrow("profile 'pmtu500': pmtu500 must be at least 576 and below the NIC's MTU (1500)");
    expect(() => parseProfile('mtu1400-pmtu1400')).toThrow("below the NIC's MTU (1400)");
    expect(() => parseProfile('pmtux')).toThrow("unknown trait 'pmtux'");
  });
});

describe('path-MTU router cabling', () => {
  it('takes router addresses above the hosts and never a host index without one', () => {
    expect(routerAddress(0)).toBe('192.168.0.254');
    expect(routerAddress(2)).toBe('192.168.0.252');
    expect(routerAddress(74)).toBe('192.168.0.180'); // host 99 is .179
    expect(() => routerAddress(75)).toThrow('at most 74');
  });

  it('routes the subnet on the switch leg', () => {
    expect(subnetOf('192.168.0.82', 24)).toBe('192.168.0.0/24');
    expect(subnetOf('10.1.2.3', 16)).toBe('10.1.0.0/16');
    expect(subnetOf('10.1.2.3', 32)).toBe('10.1.2.3/32');
  });

  it('a reboot re-cables the host to its router (which stays) with its /32 route at the locked MTU', () => {
    const lines = replugShell({
      netns: 'l-node2',
      sw: 'l-sw',
      port: 'h2',
      address: '192.168.0.82',
      prefix: 24,
      router: { netns: 'l-node2-rt', address: '192.168.0.252', mtu: 1400 },
    });
    expect(lines[0]).toBe('ip -n l-node2-rt link del dn0 2>/dev/null');
    expect(lines.join('\n')).toContain('type veth peer name dn0 mtu 1500 netns l-node2-rt');
    expect(lines.at(-1)).toBe(
      "printf 'link set dn0 up\\nntable change name arp_cache dev dn0 proxy_delay 0\\nroute add 192.168.0.82/32 dev dn0 src 192.168.0.252 mtu lock 1400\\n' | ip -n l-node2-rt -batch - || exit 1",
    );
    expect(lines.join('\n')).not.toContain('l-sw');
  });
});
