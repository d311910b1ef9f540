// `podnet plan`: a terraform-like plan per host (`+ ~ -` from each change's action, colour on
// a TTY), or the plan's JSON; `--offline`: each host's desired state, or its JSON.
import { hostPlanHasChanges, type HostPlan } from '../engine/host-plan';
import { describeUnderlay } from '../model';
import type { NetworkPlan, OfflinePlan } from '../engine/network-plan';
import type { ChangeAction, HostDifference } from '../planner/host-diff';
import type { OtherNetwork } from '../planner/stale-state';
import { renderHostState } from './host-state-view';
import { offlinePlanJson, planJson, printJson } from './json';
import { palette, type Palette, type Streams, type ViewType } from './view';

/** The symbol of each action (terraform's plans.Action); `!` marks what is shown and left alone. */
export const ACTION_SYMBOL: Readonly<Record<ChangeAction, string>> = { create: '+', update: '~', delete: '-', report: '!' };

/** A line coloured and marked by its action. */
export function actionLine(action: ChangeAction, text: string, p: Palette): string {
  const colour = action === 'create' ? p.add : action === 'delete' ? p.remove : p.change;
  return colour(`  ${ACTION_SYMBOL[action]} ${text}`);
}

function differenceText(d: HostDifference): string {
  if (d.kind === 'route-missing') return `route ${d.expected}`;
  if (d.kind === 'route-extra') return `route ${d.actual}`;
  if (d.kind === 'route-stale' || d.kind === 'address-stale') return `${d.kind} ${d.subject} (${d.actual})`;
  return `${d.kind} ${d.subject}${d.expected ? ` (want ${d.expected}${d.actual ? `, have ${d.actual}` : ''})` : ''}`;
}

/** Another network's leftovers apply removes: what is there and how it goes. */
function otherNetworkText(o: OtherNetwork): string {
  if (o.network === undefined) return `${o.pieces.join(', ')} (no podnet network claims it)`;
  const agent = o.unitState !== undefined ? `agent ${o.unitState}` : 'no agent unit';
  const how = o.teardown
    ? 'its teardown runs, then its files go'
    : o.hasConfig
      ? "this network's own state may be here: only what carries its name goes"
      : 'no config to tear down with: what carries its name goes';
  return `podnet network ${o.network} (${agent}): ${o.pieces.join(', ')}; ${how}`;
}

const FILE_LABEL = { config: 'agent config', unit: 'systemd unit' } as const;

export function renderHostPlan(plan: HostPlan, p: Palette): string[] {
  const lines = [p.bold(`# ${plan.node} (${plan.address})`), `  underlay ${describeUnderlay(plan.underlay)}`];
  // directRouting's decision per peer (with it off every peer is tunnelled: nothing to say).
  const peers = plan.peers
    .filter((x) => x.why !== 'directRouting is off')
    .map((x) => `  peer ${x.node} (${x.address}): ${x.tunnelled ? 'tunnelled' : 'direct'}, ${x.why}`);
  lines.push(...peers);
  const header = lines.length;
  if (plan.runtime.action === 'link-host')
    lines.push(actionLine('update', `run the agent on the host's ${plan.runtime.path} (${plan.runtime.version})`, p));
  if (plan.runtime.action === 'ship')
    lines.push(actionLine('update', `upload node runtime -> ${plan.runtime.artifact.remotePath} (${plan.runtime.why})`, p));
  for (const u of plan.uploads) lines.push(actionLine('update', `upload ${u.name} -> ${u.remotePath}`, p));
  for (const f of plan.files) lines.push(actionLine(f.action, `${FILE_LABEL[f.content]} ${f.path}`, p));
  if (plan.daemonReload) lines.push(actionLine('update', 'systemctl daemon-reload', p));
  if (plan.enable) lines.push(actionLine('create', 'enable agent unit', p));
  if (plan.service !== 'none')
    lines.push(actionLine('update', `${plan.service} agent${plan.staleAgent ? ` (${plan.staleAgent})` : ''}`, p));
  for (const d of plan.network) lines.push(actionLine(d.action, differenceText(d), p));
  for (const o of plan.otherNetworks) lines.push(actionLine('delete', otherNetworkText(o), p));
  if (lines.length === header) lines.push('  no changes');
  return lines;
}

/** The whole plan for people: each host, each host that failed, a summary line. */
export function renderPlan(plan: NetworkPlan, p: Palette): string {
  const lines = plan.hosts.flatMap((h) => renderHostPlan(h, p));
  for (const e of plan.errors) lines.push(p.remove(`# ${e.node}: ERROR ${e.error.message}`));
  lines.push(
    plan.hasChanges
      ? `plan: changes on ${plan.hosts
          .filter(hostPlanHasChanges)
          .map((h) => h.node)
          .join(', ')}`
      : 'plan: no changes',
  );
  return lines.join('\n') + '\n';
}

export function renderOfflinePlan(plan: OfflinePlan): string {
  const n = plan.network;
  return (
    `network ${n.name}: cluster ${n.clusterCidr}, /${n.subnetLength} per node, ipip${n.backend.directRouting ? ' (directRouting)' : ''}, mtu ${n.mtu ?? 'per host: underlay - 20'}\n\n` +
    plan.hosts.map((h) => renderHostState(h.state, h.address)).join('\n\n') +
    '\n'
  );
}

export interface PlanView {
  plan(plan: NetworkPlan): void;
  offline(plan: OfflinePlan): void;
}

export function planView(type: ViewType, streams: Streams): PlanView {
  if (type === 'json')
    return { plan: (x) => streams.out(printJson(planJson(x))), offline: (x) => streams.out(printJson(offlinePlanJson(x))) };
  return { plan: (x) => streams.out(renderPlan(x, palette(streams.color))), offline: (x) => streams.out(renderOfflinePlan(x)) };
}
