// IPv4 addresses and prefixes as plain numbers: the model's arithmetic (subnet allocation,
// containment, overlap) is exact and needs no library.

/** An IPv4 prefix in canonical form: `base` has no host bits set. */
export interface Ipv4Cidr {
  readonly base: number; // unsigned 32-bit
  readonly length: number; // 0..32
}

const OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** Parses dotted-quad IPv4; undefined when malformed (no leading zeros, each octet 0-255). */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!OCTET.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

/** Like parseIpv4, for values already validated upstream; throws Error naming the text otherwise. */
export function requireIpv4(text: string): number {
  const value = parseIpv4(text);
  if (value === undefined) throw new Error(`not an IPv4 address: '${text}'`);
  return value;
}

export function formatIpv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

export function prefixMask(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

export type CidrParse = { readonly ok: true; readonly cidr: Ipv4Cidr } | { readonly ok: false; readonly problem: string };

/** Parses "a.b.c.d/n"; refuses host bits so that a typo never silently widens a prefix. */
export function parseCidr(text: string): CidrParse {
  const slash = text.indexOf('/');
  if (slash < 0) return { ok: false, problem: 'is not in CIDR notation (expected a.b.c.d/len)' };
  const address = parseIpv4(text.slice(0, slash));
  const lengthText = text.slice(slash + 1);
  if (address === undefined) return { ok: false, problem: 'has a malformed IPv4 address' };
  if (!/^(0|[1-9][0-9]?)$/.test(lengthText) || Number(lengthText) > 32) {
    return { ok: false, problem: 'has a prefix length that is not 0-32' };
  }
  const length = Number(lengthText);
  const base = (address & prefixMask(length)) >>> 0;
  if (base !== address) {
    return { ok: false, problem: `has host bits set (did you mean ${formatIpv4(base)}/${length}?)` };
  }
  return { ok: true, cidr: { base, length } };
}

/** Like parseCidr, for values already validated upstream; throws Error with parseCidr's problem otherwise. */
export function requireCidr(text: string): Ipv4Cidr {
  const parsed = parseCidr(text);
  if (!parsed.ok) throw new Error(`CIDR '${text}' ${parsed.problem}`);
  return parsed.cidr;
}

export function formatCidr(cidr: Ipv4Cidr): string {
  return `${formatIpv4(cidr.base)}/${cidr.length}`;
}

export function cidrSize(cidr: Ipv4Cidr): number {
  return 2 ** (32 - cidr.length);
}

/** True when `address` (unsigned 32-bit) lies inside `cidr`. */
export function cidrContainsAddress(cidr: Ipv4Cidr, address: number): boolean {
  return (address & prefixMask(cidr.length)) >>> 0 === cidr.base;
}

/** True when `inner` lies wholly inside `outer`. */
export function cidrContains(outer: Ipv4Cidr, inner: Ipv4Cidr): boolean {
  return inner.length >= outer.length && cidrContainsAddress(outer, inner.base);
}

export function cidrsOverlap(a: Ipv4Cidr, b: Ipv4Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}

/** The `index`-th address inside the prefix (0 = the network address). */
export function nthAddress(cidr: Ipv4Cidr, index: number): number {
  return (cidr.base + index) >>> 0;
}

/** The netmask in dotted form, as `route -n` prints it. */
export function formatNetmask(length: number): string {
  return formatIpv4(prefixMask(length));
}
