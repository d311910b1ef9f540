// podnet's accept rules in a host firewall's iptables filter FORWARD chain. An accept in
// podnet's own nftables table does not override a drop in another base chain on the same hook
// (iptables-nft's `filter FORWARD`, with Docker's, ufw's or a hand-set policy DROP), and
// iptables-legacy's chain is another hook altogether: like flanneld, podnet puts its accept
// rules into the filter FORWARD chain itself, of each iptables that has one, and nowhere else.

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
