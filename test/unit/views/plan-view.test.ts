// `podnet plan`: the human and JSON renderings of one run, against golden files.
import { buildManifest } from '../../../src/model';
import { planFromSnapshot, planOffline } from '../../../src/engine/network-plan';
import { renderOfflinePlan, renderPlan, planView } from '../../../src/views/plan-view';
import { palette } from '../../../src/views/view';
import { offlinePlanJson, planJson, printJson } from '../../../src/views/json';
import { referenceSpec } from '../reference-network';
import { artifacts, expectGolden, snapshot } from './scenario';

const plan = planFromSnapshot(snapshot(), artifacts);

describe('plan view', () => {
  it('shows each change with the symbol of its action, errors and a summary (golden plan.txt)', () => {
    expectGolden('plan.txt', renderPlan(plan, palette(false)));
  });

  it('prints the plan document (golden plan.json)', () => {
    expectGolden('plan.json', printJson(planJson(plan)));
  });

  it('marks a route it will not touch with !, never as a change apply makes', () => {
    const text = renderPlan(plan, palette(false));
    expect(text).toContain('  ! route-foreign 10.244.2.0/24');
    expect(text).toContain('  - route 10.244.9.0/24 via 192.168.0.89 dev flannel.ipip onlink');
  });

  it('colours by action on a terminal', () => {
    expect(renderPlan(plan, palette(true))).toContain('\x1b[32m  + route 10.244.2.0/24 via 192.168.0.82 dev flannel.ipip onlink\x1b[0m');
  });

  it('writes JSON to stdout only, through the view the command picks', () => {
    const out: string[] = [];
    const err: string[] = [];
    planView('json', { out: (t) => out.push(t), err: (t) => err.push(t), color: true }).plan(plan);
    expect(err).toEqual([]);
    expect(JSON.parse(out.join(''))).toMatchObject({ schema: 'podnet.dev/plan/v3', changes: true });
  });
});

describe('plan --offline view', () => {
  const offline = planOffline(buildManifest(referenceSpec), ['node1']);
  it('shows the desired state (golden offline-plan.txt)', () => {
    expectGolden('offline-plan.txt', renderOfflinePlan(offline));
  });
  it('prints the offline plan document (golden offline-plan.json)', () => {
    expectGolden('offline-plan.json', printJson(offlinePlanJson(offline)));
  });
});
