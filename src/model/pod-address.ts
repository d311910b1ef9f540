// Which addresses of a node's pod subnet a pod can hold. flannel's CNI config hands the subnet
// to host-local IPAM with cni0's address (.1) as the gateway; host-local never gives out the
// network address (.0, which podnet puts on flannel.ipip), the gateway, or the broadcast
// address. Anything else a pod claims on its own interface is not the pod's to receive.
import { cidrContainsAddress, cidrSize, parseCidr, parseIpv4, type Ipv4Cidr } from './ipv4';

/**
 * True when `ip` is an address IPAM could have given a pod in `podCidr` ("10.244.1.0/24"):
 * inside it, and neither its first two addresses (tunnel, gateway) nor its last (broadcast).
 * False for anything that does not parse.
 */
export function isAssignablePodAddress(podCidr: string, ip: string): boolean {
  const subnet = parseCidr(podCidr);
  const address = parseIpv4(ip);
  return subnet.ok && address !== undefined && isAssignablePodAddressIn(subnet.cidr, address);
}

/** isAssignablePodAddress for a parsed subnet and an unsigned 32-bit address (per-packet callers). */
export function isAssignablePodAddressIn(podCidr: Ipv4Cidr, address: number): boolean {
  if (!cidrContainsAddress(podCidr, address)) return false;
  const index = (address - podCidr.base) >>> 0;
  return index >= 2 && index < cidrSize(podCidr) - 1;
}
