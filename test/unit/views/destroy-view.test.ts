// `podnet destroy`: the human and JSON renderings, against golden files.
import type { NetworkDestroy } from '../../../src/engine/destroy';
import { renderDestroy } from '../../../src/views/destroy-view';
import { destroyJson, printJson } from '../../../src/views/json';
import { expectGolden } from './scenario';

const destroy: NetworkDestroy = {
  network: 'cluster',
  ok: false,
  hosts: [
    { node: 'master', outcome: 'destroyed', steps: ['stopped and disabled agent', 'tore down network', 'removed files'] },
    { node: 'node1', outcome: 'skipped', heldRevision: 'r-new', wantedRevision: 'r-old' },
    { node: 'node2', outcome: 'failed', error: { kind: 'refused', message: 'node2 (192.168.0.82:22): connection refused' } },
  ],
};

describe('destroy view', () => {
  it('gives each host one line: done, skipped by the revision guard, or failed (golden destroy.txt)', () => {
    expectGolden('destroy.txt', renderDestroy(destroy));
  });

  it('prints the destroy document (golden destroy.json)', () => {
    expectGolden('destroy.json', printJson(destroyJson(destroy)));
  });
});
