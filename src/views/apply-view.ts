// `podnet apply`: per-host progress on stderr as hosts start and finish, a summary on stdout;
// or one JSON document at the end.
import type { ApplyHostResult, ApplyProgress, ApplyStep, NetworkApply } from '../engine/apply';
import type { HostPlan, RuntimeStep } from '../engine/host-plan';
import { applyJson, printJson } from './json';
import type { Streams, ViewType } from './view';

function describeRuntime(step: RuntimeStep): string {
  if (step.action === 'ship') return 'shipping the node runtime';
  return `runtime ${step.action === 'link-host' ? step.path : step.target}`;
}

/** The line a host gets when its apply starts. */
export function renderApplying(node: string, plan: HostPlan): string {
  return `${node}: applying (${describeRuntime(plan.runtime)}, ${plan.uploads.length} upload(s), ${plan.files.length} file(s), service ${plan.service})`;
}

function renderSteps(steps: readonly ApplyStep[]): string {
  return steps.map((s) => `${s.what} ${s.seconds.toFixed(2)}s`).join(', ');
}

/** The line a host gets when its apply is done. */
export function renderApplied(r: ApplyHostResult): string {
  const what = r.steps.length ? renderSteps(r.steps) : 'no changes';
  if (r.ok) return `${r.node}: ok in ${r.seconds.toFixed(2)} s (${what})`;
  return `${r.node}: FAILED after ${r.seconds.toFixed(2)} s: ${r.error.message}${r.steps.length ? ` (done before the failure: ${what})` : ''}`;
}

export function renderApplyProgress(p: ApplyProgress): string {
  return (p.event === 'applying' ? renderApplying(p.node, p.plan) : renderApplied(p.result)) + '\n';
}

export function renderApplySummary(apply: NetworkApply): string {
  const failed = apply.hosts.filter((r) => !r.ok);
  const changed = apply.hosts.filter((r) => r.changed).length;
  return `apply: ${apply.hosts.length - failed.length}/${apply.hosts.length} hosts ok, ${changed} changed${failed.length ? `; failed: ${failed.map((f) => f.node).join(', ')}` : ''}\n`;
}

export interface ApplyView {
  /** Handed to applyNetwork. */
  readonly progress: (p: ApplyProgress) => void;
  result(apply: NetworkApply): void;
}

export function applyView(type: ViewType, streams: Streams): ApplyView {
  if (type === 'json') return { progress: () => undefined, result: (a) => streams.out(printJson(applyJson(a))) };
  return { progress: (p) => streams.err(renderApplyProgress(p)), result: (a) => streams.out(renderApplySummary(a)) };
}
