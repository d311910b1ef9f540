// /run/flannel/subnet.env exactly as flanneld writes it, so the flannel CNI plugin (and
// anything else that reads it) works unchanged.

export interface SubnetEnv {
  readonly network: string; // FLANNEL_NETWORK, the cluster CIDR
  readonly subnet: string; // FLANNEL_SUBNET, the gateway address with the subnet's length
  readonly mtu: number;
  readonly ipMasq: boolean;
}

export function renderSubnetEnv(env: SubnetEnv): string {
  return `FLANNEL_NETWORK=${env.network}\nFLANNEL_SUBNET=${env.subnet}\nFLANNEL_MTU=${env.mtu}\nFLANNEL_IPMASQ=${env.ipMasq}\n`;
}

/** Parses subnet.env; unknown keys are ignored, missing ones give undefined. */
export function parseSubnetEnv(text: string): Partial<SubnetEnv> {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z_]+)=(.*)$/.exec(line);
    if (m) values.set(m[1]!, m[2]!.trim());
  }
  const mtu = values.get('FLANNEL_MTU');
  const masq = values.get('FLANNEL_IPMASQ');
  return {
    ...(values.has('FLANNEL_NETWORK') ? { network: values.get('FLANNEL_NETWORK')! } : {}),
    ...(values.has('FLANNEL_SUBNET') ? { subnet: values.get('FLANNEL_SUBNET')! } : {}),
    ...(mtu !== undefined && /^\d+$/.test(mtu) ? { mtu: Number(mtu) } : {}),
    ...(masq === 'true' || masq === 'false' ? { ipMasq: masq === 'true' } : {}),
  };
}
