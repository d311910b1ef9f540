// flannel's masquerade and forward rules, as one nftables table of podnet's own: replacing
// the table is atomic, and deleting it removes exactly what podnet added.
import { nftTableName } from './host-layout';

export interface MasqueradeRules {
  readonly network: string;
  readonly clusterCidr: string;
  readonly podCidr: string;
  readonly ipMasq: boolean;
}

/**
 * The table's full text for `nft -f`. Like flannel: pod-to-pod traffic is never NATed;
 * pod traffic leaving the cluster is masqueraded (except multicast); traffic from outside the
 * cluster to another node's pods is masqueraded too; FORWARD accepts the cluster CIDR.
 */
export function renderNftTable(rules: MasqueradeRules): string {
  const table = nftTableName(rules.network);
  const c = rules.clusterCidr;
  const lines = [
    `table ip ${table} {`,
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    `    ip saddr ${c} accept`,
    `    ip daddr ${c} accept`,
    '  }',
  ];
  if (rules.ipMasq) {
    lines.push(
      '  chain postrouting {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      `    ip saddr ${c} ip daddr ${c} return`,
      `    ip saddr ${c} ip daddr != 224.0.0.0/4 masquerade random,fully-random`,
      `    ip saddr != ${c} ip daddr ${rules.podCidr} return`,
      `    ip saddr != ${c} ip daddr ${c} masquerade random,fully-random`,
      '  }',
    );
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}
