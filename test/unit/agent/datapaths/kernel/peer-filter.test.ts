// The kernel datapath's non-peer filter: its nft scripts, its listing check and counter parsing,
// and that it keeps the table with the last peers (against a recording runner).
import {
  PeerFilter,
  hasDropRule,
  parseDropCounter,
  parsePeerElements,
  peerFilterScript,
  peerSetScript,
} from '../../../../../agent/datapaths/kernel/peer-filter';
import type { Runner } from '../../../../../agent/host/runner';
import type { CommandResult } from '../../../../../src/host/command-result';

// `nft list table ip podnet_ipip` on Debian 12 (nftables 1.0.6) after peerFilterScript.
const LISTING = `table ip podnet_ipip {
	counter unknown_source {
		packets 0 bytes 0
	}

	set peers {
		type ipv4_addr
		elements = { 192.168.0.80, 192.168.0.82 }
	}

	chain input {
		type filter hook input priority filter; policy accept;
		ip protocol ipencap ip saddr != @peers counter name "unknown_source" drop
	}
}
`;

describe('kernel datapath non-peer filter', () => {
  it('makes its own table atomically: declare, delete, then the whole table with the peers', () => {
    const s = peerFilterScript(['192.168.0.80', '192.168.0.82']);
    expect(s.split('\n').slice(0, 3)).toEqual(['table ip podnet_ipip', 'delete table ip podnet_ipip', 'table ip podnet_ipip {']);
    expect(s).toContain('elements = { 192.168.0.80, 192.168.0.82 }');
    expect(s).toContain('type filter hook input priority filter; policy accept;');
    expect(s).toContain('ip protocol 4 ip saddr != @peers counter name "unknown_source" drop');
    expect(peerFilterScript([])).toContain('set peers { type ipv4_addr; }'); // no peers: every protocol-4 packet is a non-peer's
  });

  it('replaces the peers in place in one transaction, the counter untouched', () => {
    expect(peerSetScript(['192.168.0.81'])).toBe('flush set ip podnet_ipip peers\nadd element ip podnet_ipip peers { 192.168.0.81 }\n');
    expect(peerSetScript([])).toBe('flush set ip podnet_ipip peers\n');
  });

  it('reads the rule in a listing and the counter from nft -j', () => {
    expect(hasDropRule(LISTING)).toBe(true);
    expect(hasDropRule(LISTING.replace(/\t\tip protocol.*\n/, ''))).toBe(false);
    expect(
      parseDropCounter(
        '{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"counter": {"family": "ip", "name": "unknown_source", "table": "podnet_ipip", "handle": 2, "packets": 3, "bytes": 168}}]}',
      ),
    ).toBe(3);
    expect(() => parseDropCounter('{"nftables": []}')).toThrow(/no counter unknown_source/);
  });

  it('reads the peer set from a listing, one line or wrapped, empty', () => {
    expect(parsePeerElements(LISTING)).toEqual(['192.168.0.80', '192.168.0.82']);
    expect(parsePeerElements(LISTING.replace('192.168.0.82 }', '192.168.0.82,\n\t\t\t     192.168.0.10 }'))).toEqual([
      '192.168.0.10',
      '192.168.0.80',
      '192.168.0.82',
    ]);
    expect(parsePeerElements(LISTING.replace(/\t\telements = .*\n/, ''))).toEqual([]);
  });

  it('writes no peers the table already holds (the check after ensure), and writes changed ones', async () => {
    const calls: string[] = [];
    const run: Runner = async (file, args) => {
      calls.push(`${file} ${args.join(' ')}`);
      return { code: 0, stdout: args[0] === 'list' ? LISTING : '', stderr: '' };
    };
    const f = new PeerFilter(run);
    await f.ensure();
    await f.setPeers(['192.168.0.82', '192.168.0.80']);
    expect(calls).toEqual(['nft list table ip podnet_ipip']);
    await f.ensure();
    await f.setPeers(['192.168.0.80']);
    expect(calls.at(-1)).toBe('nft -f -');
    calls.length = 0;
    await f.setPeers(['192.168.0.80']); // no listing just before: written
    expect(calls).toEqual(['nft -f -']);
  });

  it('recreates a missing or edited table with the last peers; a missing table on a peer update is made', async () => {
    const calls: string[] = [];
    let table: string | undefined;
    const run: Runner = async (file, args, opts) => {
      calls.push(`${file} ${args.join(' ')}${opts?.input ? `\n${opts.input}` : ''}`);
      const ok = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '' });
      if (args[0] === 'list') return table ? ok(table) : { code: 1, stdout: '', stderr: 'No such file or directory' };
      if (args[0] === '-f' && opts?.input?.startsWith('flush') && !table)
        return { code: 1, stdout: '', stderr: 'No such file or directory' };
      if (args[0] === '-f' && opts?.input?.startsWith('table')) table = LISTING;
      return ok();
    };
    const f = new PeerFilter(run);
    await f.setPeers(['192.168.0.82', '192.168.0.80', '192.168.0.82']);
    expect(calls.at(-1)).toContain('elements = { 192.168.0.80, 192.168.0.82 }');
    calls.length = 0;
    await f.ensure();
    expect(calls).toEqual(['nft list table ip podnet_ipip']); // present and whole: nothing to do
    table = undefined;
    await f.ensure();
    expect(calls.at(-1)).toContain('elements = { 192.168.0.80, 192.168.0.82 }');
  });
});
