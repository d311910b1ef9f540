import { isAssignablePodAddress, isAssignablePodAddressIn, requireCidr, requireIpv4 } from '../../../src/model';

describe('isAssignablePodAddress', () => {
  it.each([
    ['10.244.1.2', true],
    ['10.244.1.254', true],
    ['10.244.1.0', false], // flannel.ipip's address
    ['10.244.1.1', false], // cni0, the pods' gateway
    ['10.244.1.255', false], // broadcast
    ['10.244.2.7', false], // another node's subnet
    ['10.244.1.300', false],
    ['not-an-ip', false],
  ])('%s in 10.244.1.0/24: %s', (ip, ok) => {
    expect(isAssignablePodAddress('10.244.1.0/24', ip)).toBe(ok);
  });

  it('holds for other prefix lengths, and a /31 has no pod addresses', () => {
    expect(isAssignablePodAddress('10.244.0.0/26', '10.244.0.62')).toBe(true);
    expect(isAssignablePodAddress('10.244.0.0/26', '10.244.0.63')).toBe(false);
    expect(isAssignablePodAddress('10.244.0.0/31', '10.244.0.1')).toBe(false);
  });

  it('isAssignablePodAddressIn is the same rule over numbers', () => {
    const cidr = requireCidr('10.244.1.0/24');
    for (const [ip, ok] of [
      ['10.244.1.2', true],
      ['10.244.1.254', true],
      ['10.244.1.0', false],
      ['10.244.1.1', false],
      ['10.244.1.255', false],
      ['10.244.2.7', false],
    ] as const)
      expect([ip, isAssignablePodAddressIn(cidr, requireIpv4(ip))]).toEqual([ip, ok]);
  });
});
