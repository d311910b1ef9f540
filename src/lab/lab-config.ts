// Names, addresses and paths of a lab: pure functions, so every module derives them alike.
import { join } from 'node:path';

export const LAB_STATE_ROOT = '/var/lib/podnet/lab';
export const DEFAULT_LAB_NAME = 'podnet';
export const DEFAULT_HOSTS = 3;
export const MAX_HOSTS = 100; // 192.168.0.80 .. .179
export const WORKSTATION_ADDRESS = '192.168.0.1';
export const UNDERLAY_PREFIX = 24;

/**
 * A lab name becomes part of network namespace names (`<lab>-node12`) and of the nspawn machine
 * name, so it is short and plain: lower-case letters, digits and dashes, starting with a letter.
 */
export function validateLabName(name: string): void {
  if (!/^[a-z][a-z0-9-]{0,19}$/.test(name) || name.endsWith('-') || name.includes('--')) {
    throw new Error(`invalid lab name '${name}': use 1-20 characters of [a-z0-9-], starting with a letter`);
  }
}

export function hostName(index: number): string {
  return index === 0 ? 'master' : `node${index}`;
}
export function hostAddress(index: number): string {
  return `192.168.0.${80 + index}`;
}
export function hostNetns(lab: string, host: string): string {
  return `${lab}-${host}`;
}
/** The highest host index that can have a path-MTU router: its address must stay above the hosts' .80 .. .179. */
export const MAX_ROUTED_HOST_INDEX = 74;
/**
 * The underlay address of the router a `pmtu<N>` host sits behind (profiles.ts): the source of its
 * ICMP errors. 192.168.0.254 for host 0, counting down (.180 for host 74), so it never takes a
 * host's or the workstation's address. Throws for an index above MAX_ROUTED_HOST_INDEX.
 */
export function routerAddress(index: number): string {
  if (index > MAX_ROUTED_HOST_INDEX)
    throw new Error(`a path-MTU router needs a host index of at most ${MAX_ROUTED_HOST_INDEX}, not ${index}`);
  return `192.168.0.${254 - index}`;
}
/** The network namespace of the router a `pmtu<N>` host's cable runs through. */
export function routerNetns(lab: string, host: string): string {
  return `${lab}-${host}-rt`;
}
export function switchNetns(lab: string): string {
  return `${lab}-sw`;
}
export function workstationNetns(lab: string): string {
  return `${lab}-ws`;
}
/** The nspawn machine name (also the name of its propagate directory under /run). */
export function machineName(lab: string, host: string): string {
  return `${lab}-${host}`;
}
/** The host's port on the underlay bridge (inside the switch namespace only). */
export function switchPort(index: number): string {
  return `h${index}`;
}

export function labStateDir(lab: string): string {
  return join(LAB_STATE_ROOT, lab);
}
export function hostDir(lab: string, host: string): string {
  return join(labStateDir(lab), 'hosts', host);
}
