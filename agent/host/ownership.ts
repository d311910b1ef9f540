// The agent's ownership record (ownershipRecordPath): what podnet created on this host and
// what it found there, so that teardown removes or restores exactly that and nothing else.
// A cni0 that existed before podnet (made by the CNI bridge plugin, with pods on it) is kept;
// a clsact qdisc that was there before the eBPF datapath is kept (one it added goes once empty); ip_forward goes back only if
// podnet changed it; the cluster CIDR is unbound from firewalld's trusted zone only if podnet bound it; a datapath switch knows which datapath's pieces to take down first.
// Names podnet alone uses (flannel.ipip, its nft table, its BPF pins, proto-152 routes) are
// podnet's by name and need no record.
import { readFile, rm } from 'node:fs/promises';
import {
  EMPTY_RECORD,
  OWNERSHIP_SCHEMA,
  ownershipRecordPath,
  parseOwnership,
  type AdoptedLink,
  type OwnershipRecord,
} from '../../src/model';
import { writeFileAtomic } from './atomic-file';

export { EMPTY_RECORD, OWNERSHIP_SCHEMA, parseOwnership, type AdoptedLink, type OwnershipRecord };

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

  /** podnet is about to create `link` (it did not exist): no address of it is podnet's yet. */
  created(link: string): Promise<void> {
    return this.update((r) =>
      r.createdLinks.includes(link)
        ? r
        : {
            ...r,
            createdLinks: [...r.createdLinks, link],
            createdLinkAddresses: { ...r.createdLinkAddresses, [link]: [] },
            adoptedLinks: r.adoptedLinks.filter((a) => a.name !== link),
          },
    );
  }

  /**
   * podnet found `link` existing, and will put `address` on it unless it `has` it. A link
   * adopted before gets the address noted too when podnet adds it (a clusterCidr change gives
   * the bridge a new one): teardown and the stale-address check take back exactly those. On a
   * link podnet created, the address it wants there is noted whether or not it is on yet (the
   * link is podnet's; the addresses someone else adds to it are not).
   */
  adopted(link: string, address: string, has: boolean): Promise<void> {
    return this.update((r) => {
      if (r.createdLinks.includes(link)) {
        const noted = r.createdLinkAddresses?.[link] ?? [];
        return noted.includes(address) ? r : { ...r, createdLinkAddresses: { ...r.createdLinkAddresses, [link]: [...noted, address] } };
      }
      const known = r.adoptedLinks.find((a) => a.name === link);
      if (!known) return { ...r, adoptedLinks: [...r.adoptedLinks, { name: link, addedAddresses: has ? [] : [address] }] };
      if (has || known.addedAddresses.includes(address)) return r;
      return {
        ...r,
        adoptedLinks: r.adoptedLinks.map((a) => (a.name === link ? { ...a, addedAddresses: [...a.addedAddresses, address] } : a)),
      };
    });
  }

  /** podnet took `cidrs` off `link` again: the record forgets them. */
  removedAddresses(link: string, cidrs: readonly string[]): Promise<void> {
    const created = (r: OwnershipRecord) => r.createdLinkAddresses?.[link];
    return this.update((r) => ({
      ...r,
      ...(created(r) !== undefined
        ? { createdLinkAddresses: { ...r.createdLinkAddresses, [link]: created(r)!.filter((c) => !cidrs.includes(c)) } }
        : {}),
      adoptedLinks: r.adoptedLinks.map((a) =>
        a.name === link ? { ...a, addedAddresses: a.addedAddresses.filter((c) => !cidrs.includes(c)) } : a,
      ),
    }));
  }

  /** podnet is about to allow IP protocol 4 in firewalld's `zone` (it did not). */
  allowedFirewalldProtocol(zone: string): Promise<void> {
    return this.update((r) =>
      r.firewalldProtocolZones?.includes(zone) ? r : { ...r, firewalldProtocolZones: [...(r.firewalldProtocolZones ?? []), zone] },
    );
  }

  /** podnet is about to bind `source` to firewalld's trusted zone (it was in no zone). */
  boundFirewalldSource(source: string): Promise<void> {
    return this.update((r) =>
      r.firewalldSources?.includes(source) ? r : { ...r, firewalldSources: [...(r.firewalldSources ?? []), source] },
    );
  }

  /** podnet is about to change `sysctl` from `found` (only the first value found is kept). */
  changedSysctl(sysctl: string, found: string): Promise<void> {
    return this.update((r) => (sysctl in r.sysctls ? r : { ...r, sysctls: { ...r.sysctls, [sysctl]: found } }));
  }
}
