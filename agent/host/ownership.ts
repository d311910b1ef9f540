// The agent's ownership record (ownershipRecordPath): what podnet created on this host and
// what it found there, so that teardown removes or restores exactly that and nothing else.
// A cni0 that existed before podnet (made by the CNI bridge plugin, with pods on it) is kept;
// a clsact qdisc that was there before the eBPF datapath is kept (one it added goes once empty); ip_forward goes back only if
// podnet changed it; a datapath switch knows which datapath's pieces to take down first.
// Names podnet alone uses (flannel.ipip, its nft table, its BPF pins, proto-152 routes) are
// podnet's by name and need no record.
import { readFile, rm } from 'node:fs/promises';
import { ownershipRecordPath, type DatapathKind } from '../../src/model';
import { writeFileAtomic } from './atomic-file';

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
  /** Links podnet found and only gave an address: teardown takes the address back, the link stays. */
  readonly adoptedLinks: readonly AdoptedLink[];
  /**
   * Devices that had a clsact qdisc before podnet's first datapath came up (undefined until
   * looked at): teardown keeps theirs, and removes one podnet's datapath added once it is empty.
   */
  readonly foundClsact?: readonly string[];
  /** sysctls podnet changed, with the value it found: teardown writes that value back. */
  readonly sysctls: Readonly<Record<string, string>>;
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

/** Reads the record; undefined when there is none (a host set up by an older agent, or never). */
export async function readOwnership(network: string): Promise<OwnershipRecord | undefined> {
  const text = await readFile(ownershipRecordPath(network), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : parseOwnership(text);
}

export function removeOwnership(network: string): Promise<void> {
  return rm(ownershipRecordPath(network), { force: true });
}

/** The agent's live copy of its record: every change is written through before it is acted on. */
export class Ownership {
  private constructor(
    private readonly network: string,
    private current: OwnershipRecord,
  ) {}

  static async load(network: string): Promise<Ownership> {
    return new Ownership(network, (await readOwnership(network)) ?? EMPTY_RECORD);
  }

  /** An in-memory record (tests): changes are not written anywhere. */
  static inMemory(record: OwnershipRecord = EMPTY_RECORD): Ownership {
    return new Ownership('', record);
  }

  get record(): OwnershipRecord {
    return this.current;
  }

  /** Applies `change`; writes the file when the record changed. */
  async update(change: (r: OwnershipRecord) => OwnershipRecord): Promise<void> {
    const next = change(this.current);
    if (JSON.stringify(next) === JSON.stringify(this.current)) return;
    this.current = next;
    if (this.network) await writeFileAtomic(ownershipRecordPath(this.network), JSON.stringify(next, null, 2) + '\n');
  }

  /** podnet is about to create `link` (it did not exist). */
  created(link: string): Promise<void> {
    return this.update((r) =>
      r.createdLinks.includes(link)
        ? r
        : { ...r, createdLinks: [...r.createdLinks, link], adoptedLinks: r.adoptedLinks.filter((a) => a.name !== link) },
    );
  }

  /** podnet found `link` existing, knowing nothing of it, and will put `address` on it unless it `has` it. */
  adopted(link: string, address: string, has: boolean): Promise<void> {
    return this.update((r) =>
      r.createdLinks.includes(link) || r.adoptedLinks.some((a) => a.name === link)
        ? r
        : { ...r, adoptedLinks: [...r.adoptedLinks, { name: link, addedAddresses: has ? [] : [address] }] },
    );
  }

  /** podnet is about to change `sysctl` from `found` (only the first value found is kept). */
  changedSysctl(sysctl: string, found: string): Promise<void> {
    return this.update((r) => (sysctl in r.sysctls ? r : { ...r, sysctls: { ...r.sysctls, [sysctl]: found } }));
  }
}
