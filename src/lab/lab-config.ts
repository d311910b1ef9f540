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
