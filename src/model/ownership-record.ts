// The agent's ownership record (host-layout's ownershipRecordPath): what podnet created on a host
// and what it found there. The agent writes it (agent/host/ownership.ts) and teardown follows it;
// the live-state read carries it too, so the agent's diff and the engine's plan and drift agree
// on which of a device's addresses are podnet's to remove (a cni0 podnet found keeps the rest).
import type { DatapathKind } from './agent-status';

export const OWNERSHIP_SCHEMA = 'podnet.dev/owned/v1';

export interface AdoptedLink {
  readonly name: string;
  /** Addresses podnet put on it (CIDR form); teardown removes only these. */
  readonly addedAddresses: readonly string[];
}

export interface OwnershipRecord {
  readonly schema: typeof OWNERSHIP_SCHEMA;
  /** The datapath whose pieces (programs, pins, worker device) podnet set up here. */
  readonly datapath?: DatapathKind;
  /** Links podnet created: teardown deletes them. */
  readonly createdLinks: readonly string[];
  /**
   * Addresses podnet put on links it created (CIDR form), by link: the stale-address check takes
   * back only these (an address an admin added to podnet's cni0 is theirs). A created link with
   * no entry (an older agent's record) counts all its addresses as podnet's.
   */
  readonly createdLinkAddresses?: Readonly<Record<string, readonly string[]>>;
  /** Links podnet found and only gave an address: teardown takes the address back, the link stays. */
  readonly adoptedLinks: readonly AdoptedLink[];
  /**
   * Devices that had a clsact qdisc before podnet's first datapath came up (undefined until
   * looked at): teardown keeps theirs, and removes one podnet's datapath added once it is empty.
   */
  readonly foundClsact?: readonly string[];
  /** sysctls podnet changed, with the value it found: teardown writes that value back. */
  readonly sysctls: Readonly<Record<string, string>>;
  /** Sources podnet bound to firewalld's trusted zone (runtime configuration): teardown unbinds them. */
  readonly firewalldSources?: readonly string[];
  /** firewalld zones where podnet allowed IP protocol 4 (runtime): teardown removes it there. */
  readonly firewalldProtocolZones?: readonly string[];
}

export const EMPTY_RECORD: OwnershipRecord = { schema: OWNERSHIP_SCHEMA, createdLinks: [], adoptedLinks: [], sysctls: {} };

/** The record's text parsed; undefined when it is not one (then teardown falls back to names alone). */
export function parseOwnership(text: string): OwnershipRecord | undefined {
  try {
    const v = JSON.parse(text) as Partial<OwnershipRecord>;
    if (v?.schema !== OWNERSHIP_SCHEMA || !Array.isArray(v.createdLinks) || !Array.isArray(v.adoptedLinks) || typeof v.sysctls !== 'object')
      return undefined;
    return v as OwnershipRecord;
  } catch {
    return undefined;
  }
}

/**
 * Which of `device`'s addresses podnet put there, by the record: those it noted on a link it
 * created or adopted (all of them on a created link an older agent's record notes no address
 * for), none without a record or a word about the link (a host podnet never ran on, or an older
 * agent's: nothing is removed on a guess).
 */
export function podnetAddressesOn(
  record: OwnershipRecord | undefined,
  device: string,
): { readonly all: true } | { readonly all: false; readonly added: readonly string[] } {
  if (record?.createdLinks.includes(device)) {
    const noted = record.createdLinkAddresses?.[device];
    return noted === undefined ? { all: true } : { all: false, added: noted };
  }
  return { all: false, added: record?.adoptedLinks.find((a) => a.name === device)?.addedAddresses ?? [] };
}
