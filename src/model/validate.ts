// Structural and semantic validation of a NetworkSpec. It accepts `unknown` because specs
// also arrive as JSON files; every message names the field and the value.
import { AGENT_RUNTIME_CHOICES, DATAPATH_CHOICES, type NetworkSpec } from './spec';
import { cidrContains, cidrContainsAddress, cidrsOverlap, formatCidr, parseCidr, parseIpv4, type Ipv4Cidr } from './ipv4';
import type { ModelProblem } from './validation-error';
import { reservedNetworkNameProblem } from './host-layout';

const NETWORK_FIELDS = [
  'name',
  'clusterCidr',
  'subnetLength',
  'subnetMin',
  'subnetMax',
  'backend',
  'mtu',
  'underlay',
  'ipMasq',
  'cniConfDir',
  'ssh',
  'agentRuntime',
  'nodes',
];
const NODE_FIELDS = ['name', 'address', 'podCidr', 'underlayInterface', 'datapath', 'ssh'];
const BACKEND_FIELDS = ['type', 'directRouting', 'datapath'];
const UNDERLAY_FIELDS = ['mtu', 'prefixLength', 'interface'];
const SSH_FIELDS = ['user', 'port', 'privateKeyPath', 'knownHostsPath', 'acceptNewHostKeys'];

/** RFC 1123 label: what a Kubernetes node name or a hostname component may be. */
const HOSTNAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Network names end up in unit, file and nftables table names: keep them short and plain. */
const NETWORK_NAME = /^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/;
/** Linux interface names: at most 15 bytes, no slash, whitespace or colon. */
const INTERFACE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;
const POSIX_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * Paths that end up in the unit file and in shell scripts unquoted: plain characters only, so
 * neither systemd's specifiers (`%`) nor the shell can read anything into them.
 */
export function isPlainAbsolutePath(path: string): boolean {
  return /^(\/[A-Za-z0-9._-]+)+$/.test(path) && !path.split('/').some((part) => part === '.' || part === '..');
}

/** For values that arrive outside a spec (CLI flags) and end up in host paths and scripts. */
export function isValidNetworkName(name: string): boolean {
  return NETWORK_NAME.test(name) && reservedNetworkNameProblem(name) === undefined;
}

export function isValidNodeName(name: string): boolean {
  return HOSTNAME.test(name);
}

export const MIN_TUNNEL_MTU = 576;
export const MIN_UNDERLAY_MTU = 596;
export const MAX_MTU = 65535;
export const MAX_SUBNET_LENGTH = 30;

type Problems = ModelProblem[];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  return candidates.find((c) => c.toLowerCase() === lower || c.toLowerCase().startsWith(lower) || lower.startsWith(c.toLowerCase()));
}

function checkKnownFields(obj: Record<string, unknown>, known: readonly string[], path: string, problems: Problems): void {
  for (const key of Object.keys(obj)) {
    if (known.includes(key)) continue;
    const hint = closest(key, known);
    problems.push({ field: `${path}${key}`, value: obj[key], message: `unknown field${hint ? ` (did you mean ${path}${hint}?)` : ''}` });
  }
}

function checkInteger(value: unknown, field: string, min: number, max: number, problems: Problems): value is number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    problems.push({ field, value, message: 'must be a whole number' });
    return false;
  }
  if (value < min || value > max) {
    problems.push({ field, value, message: `must be between ${min} and ${max}` });
    return false;
  }
  return true;
}

function checkBoolean(value: unknown, field: string, problems: Problems): void {
  if (value !== undefined && typeof value !== 'boolean') problems.push({ field, value, message: 'must be true or false' });
}

function checkCidr(value: unknown, field: string, problems: Problems): Ipv4Cidr | undefined {
  if (typeof value !== 'string') {
    problems.push({ field, value, message: 'must be an IPv4 CIDR string such as 10.244.0.0/16' });
    return undefined;
  }
  const parsed = parseCidr(value);
  if (!parsed.ok) {
    problems.push({ field, value, message: parsed.problem });
    return undefined;
  }
  return parsed.cidr;
}

function checkSsh(value: unknown, path: string, problems: Problems): void {
  if (value === undefined) return;
  if (!isRecord(value)) {
    problems.push({ field: path, value, message: 'must be an object' });
    return;
  }
  checkKnownFields(value, SSH_FIELDS, `${path}.`, problems);
  if (value.user !== undefined && (typeof value.user !== 'string' || !POSIX_USER.test(value.user))) {
    problems.push({ field: `${path}.user`, value: value.user, message: 'must be a valid user name' });
  }
  if (value.port !== undefined) checkInteger(value.port, `${path}.port`, 1, 65535, problems);
  for (const key of ['privateKeyPath', 'knownHostsPath'] as const) {
    if (value[key] !== undefined && (typeof value[key] !== 'string' || value[key] === '')) {
      problems.push({ field: `${path}.${key}`, value: value[key], message: 'must be a non-empty path' });
    }
  }
  checkBoolean(value.acceptNewHostKeys, `${path}.acceptNewHostKeys`, problems);
}

function checkDatapath(value: unknown, field: string, problems: Problems): void {
  if (value !== undefined && !DATAPATH_CHOICES.includes(value as never)) {
    problems.push({ field, value, message: `unknown datapath (expected one of ${DATAPATH_CHOICES.join(', ')})` });
  }
}

/** Is this address usable as a unicast host address on an underlay? */
function unicastProblem(address: number): string | undefined {
  const first = address >>> 24;
  if (address === 0) return 'is the unspecified address';
  if (first === 127) return 'is a loopback address';
  if (first >= 224 && first <= 239) return 'is a multicast address';
  if (first >= 240) return 'is a reserved or broadcast address';
  if (first === 0) return 'is in 0.0.0.0/8, which is not routable';
  return undefined;
}

/**
 * Checks a spec; returns every problem found (empty when valid). Semantic checks that need a
 * valid cluster CIDR are skipped when it is invalid, so one typo gives one message.
 */
export function validateNetworkSpec(input: unknown): ModelProblem[] {
  const problems: Problems = [];
  if (!isRecord(input)) return [{ field: 'network', value: input, message: 'must be an object' }];
  const spec = input as Record<string, unknown>;
  checkKnownFields(spec, NETWORK_FIELDS, '', problems);

  if (typeof spec.name !== 'string' || !NETWORK_NAME.test(spec.name)) {
    problems.push({
      field: 'name',
      value: spec.name,
      message: 'must be 1-32 lowercase letters, digits or dashes, starting and ending with a letter or digit',
    });
  } else {
    const reserved = reservedNetworkNameProblem(spec.name);
    if (reserved) problems.push({ field: 'name', value: spec.name, message: reserved });
  }

  const cluster = checkCidr(spec.clusterCidr, 'clusterCidr', problems);
  if (cluster && (cluster.length < 8 || cluster.length > 28)) {
    problems.push({ field: 'clusterCidr', value: spec.clusterCidr, message: 'prefix length must be between /8 and /28' });
  }

  let subnetLength: number | undefined = 24;
  if (spec.subnetLength !== undefined) {
    subnetLength = checkInteger(spec.subnetLength, 'subnetLength', 1, 32, problems) ? spec.subnetLength : undefined;
  }
  if (subnetLength !== undefined && subnetLength > MAX_SUBNET_LENGTH) {
    problems.push({
      field: 'subnetLength',
      value: subnetLength,
      message: `must be at most ${MAX_SUBNET_LENGTH}: a pod subnet needs a network address, the cni0 gateway, at least one pod and a broadcast address`,
    });
    subnetLength = undefined;
  }
  if (cluster && subnetLength !== undefined && subnetLength <= cluster.length) {
    problems.push({
      field: 'subnetLength',
      value: subnetLength,
      message: `must be longer than the cluster CIDR's /${cluster.length}, so that each node gets a part of it`,
    });
    subnetLength = undefined;
  }

  const range: { min?: Ipv4Cidr; max?: Ipv4Cidr } = {};
  for (const key of ['subnetMin', 'subnetMax'] as const) {
    if (spec[key] === undefined) continue;
    const cidr = checkCidr(spec[key], key, problems);
    if (!cidr || !cluster || subnetLength === undefined) continue;
    if (cidr.length !== subnetLength)
      problems.push({ field: key, value: spec[key], message: `must be a /${subnetLength} (the subnet length)` });
    else if (!cidrContains(cluster, cidr))
      problems.push({ field: key, value: spec[key], message: `is outside the cluster CIDR ${formatCidr(cluster)}` });
    else range[key === 'subnetMin' ? 'min' : 'max'] = cidr;
  }
  if (range.min && range.max && range.min.base > range.max.base) {
    problems.push({ field: 'subnetMin', value: spec.subnetMin, message: `is above subnetMax ${String(spec.subnetMax)}` });
  }

  if (!isRecord(spec.backend)) {
    problems.push({ field: 'backend', value: spec.backend, message: 'must be an object such as { type: "ipip" }' });
  } else {
    checkKnownFields(spec.backend, BACKEND_FIELDS, 'backend.', problems);
    if (spec.backend.type !== 'ipip') {
      problems.push({ field: 'backend.type', value: spec.backend.type, message: 'unknown backend (only "ipip" is supported)' });
    }
    checkBoolean(spec.backend.directRouting, 'backend.directRouting', problems);
    checkDatapath(spec.backend.datapath, 'backend.datapath', problems);
  }

  let underlayMtu: number | undefined; // undefined: each host's own, checked against the host at plan time
  if (spec.underlay !== undefined) {
    if (!isRecord(spec.underlay)) {
      problems.push({ field: 'underlay', value: spec.underlay, message: 'must be an object' });
    } else {
      checkKnownFields(spec.underlay, UNDERLAY_FIELDS, 'underlay.', problems);
      if (spec.underlay.mtu !== undefined && checkInteger(spec.underlay.mtu, 'underlay.mtu', MIN_UNDERLAY_MTU, MAX_MTU, problems)) {
        underlayMtu = spec.underlay.mtu;
      }
      if (spec.underlay.prefixLength !== undefined) checkInteger(spec.underlay.prefixLength, 'underlay.prefixLength', 1, 32, problems);
      if (
        spec.underlay.interface !== undefined &&
        (typeof spec.underlay.interface !== 'string' || !INTERFACE_NAME.test(spec.underlay.interface))
      ) {
        problems.push({
          field: 'underlay.interface',
          value: spec.underlay.interface,
          message: 'must be a Linux interface name (1-15 characters)',
        });
      }
    }
  }
  if (
    spec.mtu !== undefined &&
    checkInteger(spec.mtu, 'mtu', MIN_TUNNEL_MTU, MAX_MTU, problems) &&
    underlayMtu !== undefined &&
    spec.mtu > underlayMtu - 20
  ) {
    problems.push({
      field: 'mtu',
      value: spec.mtu,
      message: `must be at most the underlay MTU minus the 20-byte outer header (${underlayMtu - 20})`,
    });
  }
  checkBoolean(spec.ipMasq, 'ipMasq', problems);
  if (spec.cniConfDir !== undefined && (typeof spec.cniConfDir !== 'string' || !isPlainAbsolutePath(spec.cniConfDir))) {
    problems.push({
      field: 'cniConfDir',
      value: spec.cniConfDir,
      message: 'must be an absolute directory path of letters, digits and ._-/ (no "..", no trailing slash), such as /etc/cni/net.d',
    });
  }
  checkSsh(spec.ssh, 'ssh', problems);
  if (spec.agentRuntime !== undefined && !AGENT_RUNTIME_CHOICES.includes(spec.agentRuntime as never)) {
    problems.push({
      field: 'agentRuntime',
      value: spec.agentRuntime,
      message: `unknown agent runtime (expected one of ${AGENT_RUNTIME_CHOICES.join(', ')})`,
    });
  }

  if (!Array.isArray(spec.nodes)) {
    problems.push({ field: 'nodes', value: spec.nodes, message: 'must be a list of nodes' });
    return problems;
  }
  if (spec.nodes.length === 0) problems.push({ field: 'nodes', value: [], message: 'must name at least one node' });

  const names = new Map<string, number>();
  const addresses = new Map<number, number>();
  const podCidrs: Array<{ index: number; cidr: Ipv4Cidr }> = [];
  spec.nodes.forEach((node: unknown, index: number) => {
    const path = `nodes[${index}]`;
    if (!isRecord(node)) {
      problems.push({ field: path, value: node, message: 'must be an object with name and address' });
      return;
    }
    checkKnownFields(node, NODE_FIELDS, `${path}.`, problems);
    if (typeof node.name !== 'string' || !HOSTNAME.test(node.name)) {
      problems.push({
        field: `${path}.name`,
        value: node.name,
        message: 'must be a valid hostname label (lowercase letters, digits and dashes, 1-63 characters)',
      });
    } else if (names.has(node.name)) {
      problems.push({ field: `${path}.name`, value: node.name, message: `duplicates nodes[${names.get(node.name)}].name` });
    } else {
      names.set(node.name, index);
    }

    const address = typeof node.address === 'string' ? parseIpv4(node.address) : undefined;
    if (address === undefined) {
      problems.push({ field: `${path}.address`, value: node.address, message: 'must be an IPv4 address such as 192.168.0.81' });
    } else {
      const unicast = unicastProblem(address);
      if (unicast) problems.push({ field: `${path}.address`, value: node.address, message: unicast });
      else if (addresses.has(address))
        problems.push({ field: `${path}.address`, value: node.address, message: `duplicates nodes[${addresses.get(address)}].address` });
      else addresses.set(address, index);
      if (cluster && cidrContainsAddress(cluster, address)) {
        problems.push({
          field: `${path}.address`,
          value: node.address,
          message: `is inside the cluster CIDR ${formatCidr(cluster)}; the underlay must not overlap the pod network`,
        });
      }
    }

    if (node.podCidr !== undefined) {
      const cidr = checkCidr(node.podCidr, `${path}.podCidr`, problems);
      if (cidr && cluster && subnetLength !== undefined) {
        if (!cidrContains(cluster, cidr)) {
          problems.push({ field: `${path}.podCidr`, value: node.podCidr, message: `is outside the cluster CIDR ${formatCidr(cluster)}` });
        } else if (cidr.length !== subnetLength) {
          problems.push({
            field: `${path}.podCidr`,
            value: node.podCidr,
            message: `must be a /${subnetLength} (the network's subnetLength)`,
          });
        } else {
          const clash = podCidrs.find((other) => cidrsOverlap(other.cidr, cidr));
          if (clash) problems.push({ field: `${path}.podCidr`, value: node.podCidr, message: `duplicates nodes[${clash.index}].podCidr` });
          else podCidrs.push({ index, cidr });
        }
      }
    }
    if (
      node.underlayInterface !== undefined &&
      (typeof node.underlayInterface !== 'string' || !INTERFACE_NAME.test(node.underlayInterface))
    ) {
      problems.push({
        field: `${path}.underlayInterface`,
        value: node.underlayInterface,
        message: 'must be a Linux interface name (1-15 characters)',
      });
    }
    checkDatapath(node.datapath, `${path}.datapath`, problems);
    checkSsh(node.ssh, `${path}.ssh`, problems);
  });

  if (cluster && subnetLength !== undefined) {
    const first = range.min?.base ?? cluster.base;
    const last = range.max?.base ?? cluster.base + 2 ** (32 - cluster.length) - 2 ** (32 - subnetLength);
    const available = (last - first) / 2 ** (32 - subnetLength) + 1;
    if (spec.nodes.length > available) {
      problems.push({
        field: 'nodes',
        value: undefined,
        message: `${spec.nodes.length} nodes need ${spec.nodes.length} pod subnets, but ${formatCidr(cluster)} split into /${subnetLength} (within subnetMin/subnetMax) has only ${available}`,
      });
    }
  }
  return problems;
}

/** Narrowing helper: a spec that passed `validateNetworkSpec`. */
export function isValidNetworkSpec(input: unknown): input is NetworkSpec {
  return validateNetworkSpec(input).length === 0;
}
