// src/model/ipv4.ts: the one IPv4/CIDR module the model, the engine and the agent's datapaths share.
import {
  cidrContains,
  cidrContainsAddress,
  formatCidr,
  formatIpv4,
  parseCidr,
  parseIpv4,
  requireCidr,
  requireIpv4,
} from '../../../src/model/ipv4';
import { sameUnderlaySubnet } from '../../../src/model/network';

describe('IPv4 addresses', () => {
  it('parses dotted quads strictly and formats them back', () => {
    expect(formatIpv4(parseIpv4('255.0.10.1')!)).toBe('255.0.10.1');
    expect(parseIpv4('192.168.0.81')).toBe(0xc0a80051);
    for (const bad of ['10.0.0', '10.0.0.256', '010.0.0.1', '1.2.3.4.5', '', 'a.b.c.d']) expect(parseIpv4(bad)).toBeUndefined();
    expect(requireIpv4('10.244.2.2')).toBe(0x0af40202);
    expect(() => requireIpv4('10.0.0')).toThrow(/not an IPv4 address: '10.0.0'/);
  });
});

describe('CIDRs', () => {
  it('parses canonical prefixes and refuses host bits with a hint', () => {
    expect(parseCidr('0.0.0.0/0')).toEqual({ ok: true, cidr: { base: 0, length: 0 } });
    expect(formatCidr(requireCidr('10.244.0.0/16'))).toBe('10.244.0.0/16');
    expect(() => requireCidr('10.244.1.7/24')).toThrow(/host bits set \(did you mean 10.244.1.0\/24\?\)/);
    expect(() => requireCidr('10.244.0.0/33')).toThrow(/prefix length/);
    expect(() => requireCidr('10.244.0.0')).toThrow(/CIDR notation/);
  });

  it('tells an address inside a prefix from one outside, and a prefix inside another', () => {
    const pods = requireCidr('10.244.1.0/24');
    expect(cidrContainsAddress(pods, requireIpv4('10.244.1.77'))).toBe(true);
    expect(cidrContainsAddress(pods, requireIpv4('10.244.2.1'))).toBe(false);
    expect(cidrContainsAddress(requireCidr('0.0.0.0/0'), requireIpv4('1.2.3.4'))).toBe(true);
    expect(cidrContains(requireCidr('10.244.0.0/16'), pods)).toBe(true);
    expect(cidrContains(pods, requireCidr('10.244.0.0/16'))).toBe(false);
  });

  it('decides directRouting neighbours by the underlay prefix', () => {
    expect(sameUnderlaySubnet('192.168.0.81', '192.168.0.82', 24)).toBe(true);
    expect(sameUnderlaySubnet('192.168.0.81', '192.168.1.82', 24)).toBe(false);
    expect(sameUnderlaySubnet('192.168.0.81', '10.0.0.1', 0)).toBe(true);
    expect(sameUnderlaySubnet('192.168.0.81', '192.168.0.81', 32)).toBe(true);
  });
});
