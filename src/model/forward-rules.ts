// podnet's accept rules in a host firewall's iptables filter FORWARD chain. An accept in
// podnet's own nftables table does not override a drop in another base chain on the same hook
// (iptables-nft's `filter FORWARD`, with Docker's, ufw's or a hand-set policy DROP), and
// iptables-legacy's chain is another hook altogether: like flanneld, podnet puts its accept
// rules into the filter FORWARD chain itself, of each iptables that has one, and nowhere else.
import { conntrackBypassTableName } from './host-layout';

/** The two iptables front ends, which keep separate rule sets on one host. */
export type IptablesBackend = 'nft' | 'legacy';
export const IPTABLES_BACKENDS: readonly IptablesBackend[] = ['nft', 'legacy'];

/** The commands of each front end (Debian ships both in the `iptables` package). */
export const IPTABLES_COMMANDS: Readonly<Record<IptablesBackend, { readonly iptables: string; readonly save: string }>> = {
  nft: { iptables: 'iptables-nft', save: 'iptables-nft-save' },
  legacy: { iptables: 'iptables-legacy', save: 'iptables-legacy-save' },
};

/** The comment that marks podnet's rules (the only ones destroy removes). */
export function forwardRuleComment(network: string): string {
  return `podnet ${network}`;
}

/**
 * podnet's rules as iptables arguments after `-I FORWARD 1` / `-D FORWARD`: accept what comes
 * from the cluster CIDR and what goes to it (flannel's pair).
 */
export function forwardAcceptRules(network: string, clusterCidr: string): readonly (readonly string[])[] {
  const comment = ['-m', 'comment', '--comment', forwardRuleComment(network)];
  return [
    ['-s', clusterCidr, ...comment, '-j', 'ACCEPT'],
    ['-d', clusterCidr, ...comment, '-j', 'ACCEPT'],
  ];
}

/** How `iptables-save` prints a rule given as `args` (quotes around a comment with a space). */
export function savedRuleLine(args: readonly string[]): string {
  return `-A FORWARD ${args.map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(' ')}`;
}

// firewalld (nftables backend, Debian 12's default) keeps its own `inet firewalld` table whose
// input and forward chains reject what no zone allows: podnet's iptables rules and its own nft
// table do not reach it. flannel's guides tell users to put the cluster CIDR into the `trusted`
// zone; podnet does that itself, in firewalld's runtime configuration only (nothing written to
// /etc/firewalld): a `firewall-cmd --reload` or a restart of firewalld drops it, and the agent,
// woken by the nftables event, puts it back.

/** The zone podnet binds the cluster CIDR to (as source). */
export const FIREWALLD_ZONE = 'trusted';

/** firewalld's nft table (family inet): its zone-dispatch and zone chains say what is bound where and what a zone allows. */
export const FIREWALLD_TABLE = 'firewalld';

/**
 * The command binding (`add`) or unbinding (`remove`) the cluster CIDR to FIREWALLD_ZONE in
 * firewalld's runtime configuration: what `firewall-cmd --zone=trusted --add-source=CIDR` asks,
 * sent over D-Bus with systemd's busctl, because firewall-cmd (Python) takes 0.7-1.3 s just to
 * start on a loaded host, and a repair should take well under a second.
 */
export function firewalldSourceCall(verb: 'add' | 'remove', clusterCidr: string): string[] {
  const method = verb === 'add' ? 'addSource' : 'removeSource';
  return [
    'busctl',
    'call',
    FIREWALLD_BUS,
    '/org/fedoraproject/FirewallD1',
    `${FIREWALLD_BUS}.zone`,
    method,
    'ss',
    FIREWALLD_ZONE,
    clusterCidr,
  ];
}

const FIREWALLD_BUS = 'org.fedoraproject.FirewallD1';

/**
 * IP-in-IP is IP protocol 4, which /etc/protocols names `ipencap` (its `ipip` is 94: a
 * `firewall-cmd --add-protocol=ipip` opens the wrong protocol). The kernel and userspace
 * datapaths receive the outer packets through the host's input chain, where firewalld asks the
 * underlay's zone; podnet allows protocol 4 there (the agent's peer filter and the ebpf
 * datapath drop it from non-peers themselves), as flannel's guides open VXLAN's port.
 */
export const FIREWALLD_TUNNEL_PROTOCOL = '4';
/** How nft prints protocol 4 in firewalld's rules (by its /etc/protocols name, or the number without one). */
export const TUNNEL_PROTOCOL_NAMES: readonly string[] = ['ipencap', '4'];

/** The command allowing (`add`) or removing (`remove`) protocol 4 in `zone`'s input, runtime only. */
export function firewalldProtocolCall(verb: 'add' | 'remove', zone: string): string[] {
  const call = ['busctl', 'call', FIREWALLD_BUS, '/org/fedoraproject/FirewallD1', `${FIREWALLD_BUS}.zone`];
  return verb === 'add'
    ? [...call, 'addProtocol', 'ssi', zone, FIREWALLD_TUNNEL_PROTOCOL, '0']
    : [...call, 'removeProtocol', 'ss', zone, FIREWALLD_TUNNEL_PROTOCOL];
}

/**
 * The ebpf datapath hands decapsulated packets for local pods straight into the pod
 * (bpf_redirect_peer), around conntrack: a pod's reply to a remote pod then has no connection
 * and is conntrack-invalid, and firewalld's forward chain drops invalid packets before any zone
 * is asked. Where the two meet, podnet leaves what local pods send to remote pods untracked too,
 * so both directions are alike (untracked is not invalid, and the trusted zone accepts it).
 * Its own table (conntrackBypassTableName), so podnet's main table stays what every datapath
 * and firewall share.
 */
/** `nft -f` script (re)creating that table; `podCidr` is this node's pod subnet, `bridge` its device. */
export function conntrackBypassScript(network: string, clusterCidr: string, podCidr: string, bridge: string): string {
  const t = conntrackBypassTableName(network);
  return [
    `table ip ${t}`,
    `delete table ip ${t}`,
    `table ip ${t} {`,
    '  chain prerouting {',
    '    type filter hook prerouting priority raw; policy accept;',
    `    iifname "${bridge}" ip daddr ${clusterCidr} ip daddr != ${podCidr} notrack`,
    '  }',
    '}',
    '',
  ].join('\n');
}
