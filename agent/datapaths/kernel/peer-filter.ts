// Kernel ipip is made with `remote any`, so it decapsulates protocol 4 from any source: a
// non-peer on the underlay could put packets into pods. The ebpf and userspace datapaths take
// protocol 4 from known peers only and count the rest; this gives the kernel datapath the same
// rule: an nftables table of the datapath's own, its `peers` set updated in place (one
// transaction: the rule never sees an empty set between two peer lists), and a named counter that
// status reports as `unknownSource`.
//
// Its own table, not the masquerade table podnet_<network>: the reconciler replaces that one whole
// when it differs from the model, which would reset the counter and race the peer updates.
import { mustRun, type Runner } from '../../host/runner';
import { KERNEL_PEER_FILTER_TABLE } from '../../../src/model/host-layout';

/** The table's name has one home, the host layout, so stale-state and destroy never take it for a network's. */
export const PEER_FILTER_TABLE = KERNEL_PEER_FILTER_TABLE;
const COUNTER = 'unknown_source';

/** `nft -f` script that (re)creates the table with `peers` (underlay IPv4 addresses). */
export function peerFilterScript(peers: readonly string[]): string {
  return [
    `table ip ${PEER_FILTER_TABLE}`,
    `delete table ip ${PEER_FILTER_TABLE}`,
    `table ip ${PEER_FILTER_TABLE} {`,
    `  set peers { type ipv4_addr; ${peers.length ? `elements = { ${peers.join(', ')} }; ` : ''}}`,
    `  counter ${COUNTER} { }`,
    '  chain input {',
    // Local delivery of protocol 4 (where ipip decapsulates) from an address that is no peer.
    '    type filter hook input priority filter; policy accept;',
    `    ip protocol 4 ip saddr != @peers counter name "${COUNTER}" drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** `nft -f` script that replaces the peer set's elements in place (the counter keeps counting). */
export function peerSetScript(peers: readonly string[]): string {
  return [
    `flush set ip ${PEER_FILTER_TABLE} peers`,
    ...(peers.length ? [`add element ip ${PEER_FILTER_TABLE} peers { ${peers.join(', ')} }`] : []),
    '',
  ].join('\n');
}

/** Packets the rule dropped, from `nft -j list counter ip podnet_ipip unknown_source`. */
export function parseDropCounter(json: string): number {
  const doc = JSON.parse(json) as { nftables?: Array<{ counter?: { name?: string; packets?: number } }> };
  const c = doc.nftables?.find((e) => e.counter?.name === COUNTER)?.counter;
  if (!c || typeof c.packets !== 'number') throw new Error(`no counter ${COUNTER} in nft output`);
  return c.packets;
}

/** Whether a listing of the table (`nft list table ip podnet_ipip`) still has the drop rule. */
export function hasDropRule(listing: string): boolean {
  return listing.includes('@peers') && listing.includes(`counter name "${COUNTER}" drop`);
}

/** The peer set's elements in a listing of the table (sorted; [] for an empty set). */
export function parsePeerElements(listing: string): string[] {
  const m = /elements = \{([^}]*)\}/.exec(listing);
  return m
    ? m[1]!
        .split(/[\s,]+/)
        .filter(Boolean)
        .sort()
    : [];
}

const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** The table on one host, as the kernel datapath keeps it. */
export class PeerFilter {
  private peers: readonly string[] = [];
  /** The set's elements as the last ensure() found them, for the setPeers that follows it in the same pass. */
  private listed: readonly string[] | undefined;

  constructor(private readonly run: Runner) {}

  /** Creates the table if it is missing or was edited (with the last peers set). */
  async ensure(): Promise<void> {
    const list = await this.run('nft', ['list', 'table', 'ip', PEER_FILTER_TABLE]);
    if (list.code === 0 && hasDropRule(list.stdout)) {
      this.listed = parsePeerElements(list.stdout);
      return;
    }
    await mustRun(this.run, 'nft', ['-f', '-'], { input: peerFilterScript(this.peers) });
    this.listed = this.peers;
  }

  /**
   * Puts `addresses` in the set. Right after ensure() found them there already it writes nothing:
   * any nftables write, even of the same elements, is an event for the agent's own `nft monitor`,
   * which would wake one more pass after every full one.
   */
  async setPeers(addresses: readonly string[]): Promise<void> {
    this.peers = [...new Set(addresses)].sort();
    const listed = this.listed;
    this.listed = undefined;
    if (listed && sameList(listed, this.peers)) return;
    const r = await this.run('nft', ['-f', '-'], { input: peerSetScript(this.peers) });
    if (r.code !== 0) await mustRun(this.run, 'nft', ['-f', '-'], { input: peerFilterScript(this.peers) }); // table gone: make it
  }

  /** Protocol-4 packets dropped from non-peers since the table was made (0 if it is gone). */
  async dropped(): Promise<number> {
    const r = await this.run('nft', ['-j', 'list', 'counter', 'ip', PEER_FILTER_TABLE, COUNTER]);
    return r.code === 0 ? parseDropCounter(r.stdout) : 0;
  }

  async remove(): Promise<void> {
    await this.run('nft', ['delete', 'table', 'ip', PEER_FILTER_TABLE]);
  }
}
