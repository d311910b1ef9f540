// `podnet apply`: progress lines, the summary and the JSON document, against golden files.
import type { ApplyProgress, NetworkApply } from '../../../src/engine/apply';
import { planFromSnapshot } from '../../../src/engine/network-plan';
import { applyView, renderApplyProgress, renderApplySummary } from '../../../src/views/apply-view';
import { applyJson, printJson } from '../../../src/views/json';
import { artifacts, expectGolden, snapshot } from './scenario';

const [masterPlan, node1Plan] = planFromSnapshot(snapshot(), artifacts).hosts;
const apply: NetworkApply = {
  network: 'cluster',
  ok: false,
  hosts: [
    {
      node: 'master',
      ok: true,
      changed: true,
      seconds: 2.4561,
      steps: [
        { what: 'wrote podnet-agent.js, podnet-bpf, cluster.json, podnet-cluster.service', seconds: 0.1234 },
        { what: 'linked /usr/bin/node (v18.20.4)+enable+start', seconds: 0.5 },
        { what: 'converged', seconds: 1.8327 },
      ],
    },
    {
      node: 'node1',
      ok: false,
      changed: false,
      seconds: 30.004,
      steps: [],
      error: {
        kind: 'converge-timeout',
        message: 'the agent did not report the new config converged within 30 s (last: degraded); see journalctl -u podnet-cluster.service',
      },
    },
    {
      node: 'node2',
      ok: false,
      changed: false,
      seconds: 0,
      steps: [],
      error: {
        kind: 'host-key-unknown',
        message: 'node2 (192.168.0.82:22): host key SHA256:n0tARealKeyJustAFixture is not in /root/.ssh/known_hosts',
      },
    },
  ],
};
const progress: ApplyProgress[] = [
  { event: 'applied', result: apply.hosts[2]! },
  { event: 'applying', node: 'master', plan: masterPlan! },
  { event: 'applying', node: 'node1', plan: node1Plan! },
  { event: 'applied', result: apply.hosts[0]! },
  { event: 'applied', result: apply.hosts[1]! },
];

describe('apply view', () => {
  it('reports each host as it starts and ends, then a summary (golden apply.txt)', () => {
    expectGolden('apply.txt', progress.map(renderApplyProgress).join('') + renderApplySummary(apply));
  });

  it('prints the apply document with steps as data (golden apply.json)', () => {
    expectGolden('apply.json', printJson(applyJson(apply)));
  });

  it('puts progress on stderr for people and nothing but the document on stdout for JSON', () => {
    const run = (type: 'human' | 'json') => {
      const out: string[] = [];
      const err: string[] = [];
      const view = applyView(type, { out: (t) => out.push(t), err: (t) => err.push(t), color: false });
      progress.forEach(view.progress);
      view.result(apply);
      return { out: out.join(''), err: err.join('') };
    };
    expect(run('human')).toEqual({ out: renderApplySummary(apply), err: progress.map(renderApplyProgress).join('') });
    expect(run('json')).toEqual({ out: printJson(applyJson(apply)), err: '' });
  });
});
