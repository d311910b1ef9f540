// How long the engine waits on a host's steps (the agent's convergence, service start, teardown).
// The defaults suit real hosts; PODNET_HOST_TIMEOUT_SCALE (a number >= 1) stretches them all for
// hosts known to be slow, e.g. the lab's VM hosts under software emulation, which run Node.js and
// every iproute2 call tens of times slower. Read once, in this one place.
const scale = ((): number => {
  const raw = process.env.PODNET_HOST_TIMEOUT_SCALE;
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 1) throw new Error(`PODNET_HOST_TIMEOUT_SCALE must be a number >= 1, not '${raw}'`);
  return n;
})();

/** `ms` stretched by PODNET_HOST_TIMEOUT_SCALE. */
export function hostTimeout(ms: number): number {
  return Math.round(ms * scale);
}
