// Renders plans, apply results and drift reports for terminals; --json prints the same data.
import type { Artifact } from '../engine/artifacts';
import type { HostPlan } from '../engine/host-plan';
import type { ApplyHostResult } from '../engine/apply';
import type { DriftReport } from '../engine/drift';

export interface Palette {
  add(s: string): string;
  change(s: string): string;
  remove(s: string): string;
  bold(s: string): string;
}

export function palette(color: boolean): Palette {
  const wrap = (code: number) => (s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  return { add: wrap(32), change: wrap(33), remove: wrap(31), bold: wrap(1) };
}

/** v2: the runtime has its own `runtime` step (keep, link-host or ship) instead of an upload. */
export const PLAN_SCHEMA = 'podnet.dev/plan/v2';

/** A host's plan as `plan --json` prints it: artifacts by name and remote path only. */
export function planToJson(plan: HostPlan): object {
  const artifact = (a: Artifact) => ({ name: a.name, remotePath: a.remotePath });
  const runtime = plan.runtime.action === 'ship' ? { action: 'ship', ...artifact(plan.runtime.artifact) } : plan.runtime;
  return { ...plan, runtime, uploads: plan.uploads.map(artifact) };
}

export function renderHostPlan(plan: HostPlan, p: Palette): string[] {
  const lines = [p.bold(`# ${plan.node} (${plan.address})`)];
  if (plan.runtime.action === 'link-host') lines.push(p.change(`  ~ run the agent on the host's ${plan.runtime.path} (${plan.runtime.version})`));
  if (plan.runtime.action === 'ship') lines.push(p.change(`  ~ upload node runtime -> ${plan.runtime.artifact.remotePath}`));
  for (const u of plan.uploads) lines.push(p.change(`  ~ upload ${u.name} -> ${u.remotePath}`));
  for (const f of plan.files) lines.push(f.action === 'create' ? p.add(`  + ${f.what} ${f.path}`) : p.change(`  ~ ${f.what} ${f.path}`));
  if (plan.daemonReload) lines.push(p.change('  ~ systemctl daemon-reload'));
  if (plan.enable) lines.push(p.add('  + enable agent unit'));
  if (plan.service !== 'none') lines.push(p.change(`  ~ ${plan.service} agent`));
  for (const d of plan.network) {
    const text = d.kind === 'route-missing' ? `route ${d.expected}` : d.kind === 'route-extra' ? `route ${d.actual}` : `${d.kind} ${d.subject}${d.expected ? ` (want ${d.expected}${d.actual ? `, have ${d.actual}` : ''})` : ''}`;
    lines.push(d.kind.endsWith('-extra') ? p.remove(`  - ${text}`) : d.kind.endsWith('-missing') ? p.add(`  + ${text}`) : p.change(`  ~ ${text}`));
  }
  if (lines.length === 1) lines.push('  no changes');
  return lines;
}

export function renderApplyResult(r: ApplyHostResult): string {
  const what = r.actions.length ? r.actions.join(', ') : 'no changes';
  return r.ok ? `${r.node}: ok in ${r.seconds.toFixed(2)} s (${what})` : `${r.node}: FAILED after ${r.seconds.toFixed(2)} s: ${r.error}${r.actions.length ? ` (done before the failure: ${what})` : ''}`;
}

export function renderDrift(report: DriftReport, p: Palette): string {
  const lines: string[] = [];
  for (const h of report.hosts) {
    if (h.error) {
      lines.push(p.remove(`${h.node} (${h.address}): ERROR ${h.error}`));
      continue;
    }
    lines.push(h.inSync ? `${h.node} (${h.address}): in sync` : p.change(`${h.node} (${h.address}): ${h.differences.length} difference(s)`));
    for (const d of h.differences) {
      const detail = d.kind.startsWith('route-') ? (d.expected ?? d.actual ?? '') : [d.expected ? `expected ${d.expected}` : '', d.actual ? `actual ${d.actual}` : ''].filter(Boolean).join(', ');
      lines.push(`  ${d.kind} ${d.subject}${detail ? `: ${detail}` : ''}`);
    }
  }
  lines.push(report.inSync ? `network ${report.network}: in sync` : `network ${report.network}: DRIFT`);
  return lines.join('\n');
}

