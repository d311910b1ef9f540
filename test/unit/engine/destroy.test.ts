// destroy's test of whether the network's state is still on a host (what makes a destroy that
// cannot tear down fail rather than report the host clean), run in sh against stand-ins.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { podnetStateTest } from '../../../src/engine/destroy';
import { AGENT_BUNDLE_PATH } from '../../../src/model';

interface Host {
  /** The host's flannel.ipip is there (the shared state). */
  readonly tunnel: boolean;
  readonly ownRecord: boolean;
  /** Another network's config (blue's) is there. */
  readonly blueConfig: boolean;
  /** blue's unit (running podnet's agent) is active. */
  readonly blueActive: boolean;
}

/** podnetStateTest('cluster') on a host as `h` says, cluster's nftables table gone (flushed). */
function stateThere(h: Host): boolean {
  const root = mkdtempSync(join(tmpdir(), 'podnet-destroy-'));
  try {
    const bin = join(root, 'bin');
    for (const d of ['bin', 'etc/podnet', 'etc/systemd/system', 'run/podnet']) mkdirSync(join(root, d), { recursive: true });
    const stub = (name: string, body: string) => writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    stub('nft', 'exit 1');
    stub('ip', h.tunnel ? 'case "$*" in "link show dev flannel.ipip") exit 0;; esac; exit 0' : '[ "$1" = link ] && exit 1; exit 0');
    stub('systemctl', h.blueActive ? '[ "$3" = podnet-blue.service ] && exit 0; exit 3' : 'exit 3');
    writeFileSync(join(root, 'etc/podnet/cluster.json'), '{}');
    writeFileSync(join(root, 'etc/systemd/system/podnet-cluster.service'), `ExecStart=node ${AGENT_BUNDLE_PATH}\n`);
    if (h.blueConfig) writeFileSync(join(root, 'etc/podnet/blue.json'), '{}');
    writeFileSync(join(root, 'etc/systemd/system/podnet-blue.service'), `ExecStart=node ${AGENT_BUNDLE_PATH}\n`);
    if (h.ownRecord) writeFileSync(join(root, 'run/podnet/cluster.owned.json'), '{}');
    const test = podnetStateTest('cluster').replace(/(^|[\s'"=])\/(etc|run|sys)\//g, `$1${root}/$2/`);
    const out = execFileSync('sh', ['-c', `if ${test}; then echo yes; else echo no; fi`], {
      env: { PATH: `${bin}:/usr/bin:/bin` },
      encoding: 'utf8',
    });
    return out.trim() === 'yes';
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

describe("destroy's test for the network's state on a host", () => {
  it("takes the shared device for another network's only while that network's agent is active, or where this network has no record", () => {
    // cluster ran here (its record), its table was flushed, blue's dead config lies beside it:
    // the tunnel is cluster's, and destroy must not call the host clean.
    expect(stateThere({ tunnel: true, ownRecord: true, blueConfig: true, blueActive: false })).toBe(true);
    // blue's agent runs: the tunnel is blue's.
    expect(stateThere({ tunnel: true, ownRecord: true, blueConfig: true, blueActive: true })).toBe(false);
    // cluster was refused here (no record), blue's config is there: the tunnel is blue's.
    expect(stateThere({ tunnel: true, ownRecord: false, blueConfig: true, blueActive: false })).toBe(false);
    // cluster alone (an older agent wrote no record): the tunnel is cluster's.
    expect(stateThere({ tunnel: true, ownRecord: false, blueConfig: false, blueActive: false })).toBe(true);
    expect(stateThere({ tunnel: false, ownRecord: true, blueConfig: true, blueActive: false })).toBe(false);
  });
});
