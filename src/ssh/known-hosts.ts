// OpenSSH known_hosts: parse, match and format. Pure functions, no I/O, so every entry shape
// can be unit-tested against what ssh-keygen produces.
//
// Line format (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"):
//   [@marker] hostpatterns keytype base64-key [comment]
// hostpatterns is either a comma-separated list of patterns (`host`, `[host]:port`, `*`/`?`
// wildcards, `!negated`) or one hashed name `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
// The name looked up is `host` for port 22 and `[host]:port` for any other port.
import { createHash, createHmac, randomBytes } from 'node:crypto';

/** Key types podnet understands. Other types parse but are reported in `notes`. */
export const SUPPORTED_KEY_TYPES = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'] as const;

export type KnownHostsMarker = 'revoked' | 'cert-authority';

export interface KnownHostsEntry {
  /** 1-based line number in the file, for messages ("known_hosts:7"). */
  readonly line: number;
  readonly marker?: KnownHostsMarker;
  /** The host field as written (patterns or one hashed name). */
  readonly hosts: string;
  /** Present when the host field is `|1|salt|hash`. */
  readonly hashed?: { readonly salt: Buffer; readonly hash: Buffer };
  /** Key type as written on the line, e.g. `ssh-ed25519`. */
  readonly keyType: string;
  /** The key blob (SSH wire format) decoded from base64. */
  readonly key: Buffer;
  readonly comment?: string;
}

export interface KnownHostsNote {
  readonly line: number;
  readonly message: string;
}

export interface ParsedKnownHosts {
  readonly entries: KnownHostsEntry[];
  /** Lines that were skipped or are not used for verification, and why. */
  readonly notes: KnownHostsNote[];
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Reads the type string at the start of an SSH wire-format public key blob. */
export function keyBlobType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len > blob.length) return undefined;
  const type = blob.subarray(4, 4 + len).toString('latin1');
  return /^[\x21-\x7e]+$/.test(type) ? type : undefined;
}

export function parseKnownHosts(text: string): ParsedKnownHosts {
  const entries: KnownHostsEntry[] = [];
  const notes: KnownHostsNote[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i]!.trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const fields = raw.split(/[ \t]+/);
    let marker: KnownHostsMarker | undefined;
    if (fields[0]!.startsWith('@')) {
      const m = fields.shift()!;
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else {
        notes.push({ line: lineNo, message: `unknown marker '${m}', line ignored` });
        continue;
      }
    }
    if (fields.length < 3) {
      notes.push({ line: lineNo, message: 'expected "hosts keytype base64-key", line ignored' });
      continue;
    }
    const [hosts, keyType, b64, ...rest] = fields as [string, string, string, ...string[]];
    if (!BASE64.test(b64)) {
      notes.push({ line: lineNo, message: 'key is not valid base64, line ignored' });
      continue;
    }
    const key = Buffer.from(b64, 'base64');
    const blobType = keyBlobType(key);
    if (blobType !== keyType) {
      notes.push({
        line: lineNo,
        message: `key type '${keyType}' does not match the key blob ('${blobType ?? 'unreadable'}'), line ignored`,
      });
      continue;
    }
    let hashed: KnownHostsEntry['hashed'];
    if (hosts.startsWith('|')) {
      hashed = parseHashedName(hosts);
      if (!hashed) {
        notes.push({ line: lineNo, message: `malformed hashed host '${hosts}', line ignored` });
        continue;
      }
    }
    if (marker === 'cert-authority') {
      notes.push({ line: lineNo, message: '@cert-authority is not supported (host certificates are not checked); line ignored' });
    } else if (!(SUPPORTED_KEY_TYPES as readonly string[]).includes(keyType)) {
      notes.push({ line: lineNo, message: `key type '${keyType}' is not supported, line ignored for verification` });
    }
    entries.push({
      line: lineNo,
      hosts,
      keyType,
      key,
      ...(marker ? { marker } : {}),
      ...(hashed ? { hashed } : {}),
      ...(rest.length ? { comment: rest.join(' ') } : {}),
    });
  }
  return { entries, notes };
}

function parseHashedName(field: string): { salt: Buffer; hash: Buffer } | undefined {
  const parts = field.split('|'); // ['', '1', salt, hash]
  if (parts.length !== 4 || parts[0] !== '' || parts[1] !== '1') return undefined;
  if (!BASE64.test(parts[2]!) || !BASE64.test(parts[3]!)) return undefined;
  const salt = Buffer.from(parts[2]!, 'base64');
  const hash = Buffer.from(parts[3]!, 'base64');
  if (salt.length !== 20 || hash.length !== 20) return undefined;
  return { salt, hash };
}

/** The name OpenSSH looks up for a host: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port = 22): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

/** `|1|salt|hash` for `name`, as `ssh-keygen -H` writes it. Salt is random unless given. */
export function hashKnownHostsName(name: string, salt: Buffer = randomBytes(20)): string {
  const hash = createHmac('sha1', salt).update(name).digest();
  return `|1|${salt.toString('base64')}|${hash.toString('base64')}`;
}

/** Glob match as OpenSSH's match_pattern: `*` any run, `?` one character, case-insensitive. */
function globMatch(name: string, pattern: string): boolean {
  const re = new RegExp(
    '^' +
      pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.') +
      '$',
    'i',
  );
  return re.test(name);
}

/** True when the entry's host field names `host:port`. */
export function entryMatchesHost(entry: Pick<KnownHostsEntry, 'hosts' | 'hashed'>, host: string, port = 22): boolean {
  const name = knownHostsName(host, port);
  if (entry.hashed) {
    const hash = createHmac('sha1', entry.hashed.salt).update(name).digest();
    return hash.equals(entry.hashed.hash);
  }
  // A negated pattern that matches vetoes the whole line (OpenSSH match_hostname).
  let matched = false;
  for (const pattern of entry.hosts.split(',')) {
    if (pattern === '') continue;
    const negated = pattern.startsWith('!');
    const p = negated ? pattern.slice(1) : pattern;
    if (globMatch(name, p)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** `SHA256:<base64 without padding>`, as `ssh-keygen -lf` and ssh print it. */
export function fingerprint(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '');
}

export type HostKeyCheck =
  | { readonly status: 'ok'; readonly entry: KnownHostsEntry }
  | { readonly status: 'revoked'; readonly entry: KnownHostsEntry }
  /** Known keys exist for this host, none equals the presented one. */
  | { readonly status: 'mismatch'; readonly known: KnownHostsEntry[] }
  /**
   * No usable key, but lines that podnet cannot check name the host: `@cert-authority`, or key
   * types outside SUPPORTED_KEY_TYPES. OpenSSH would check those, so this is not "unknown".
   */
  | { readonly status: 'unverifiable'; readonly entries: KnownHostsEntry[] }
  | { readonly status: 'unknown' };

/**
 * Checks a presented host key against parsed entries, as OpenSSH does:
 * a matching `@revoked` key always loses; a plain entry with the same key wins; keys known for
 * the host that differ mean mismatch (also when only other key types are known: the server should
 * still have them, and OpenSSH would have preferred them, so a switch of type is suspicious);
 * only `@cert-authority` or unsupported-type lines for the host mean unverifiable; no entry for
 * the host means unknown.
 */
export function checkHostKey(entries: readonly KnownHostsEntry[], host: string, port: number, presented: Buffer): HostKeyCheck {
  const forHost = entries.filter((e) => entryMatchesHost(e, host, port));
  const revoked = forHost.find((e) => e.marker === 'revoked' && e.key.equals(presented));
  if (revoked) return { status: 'revoked', entry: revoked };
  const supported = (e: KnownHostsEntry): boolean => (SUPPORTED_KEY_TYPES as readonly string[]).includes(e.keyType);
  const plain = forHost.filter((e) => e.marker === undefined && supported(e));
  const same = plain.find((e) => e.key.equals(presented));
  if (same) return { status: 'ok', entry: same };
  if (plain.length > 0) return { status: 'mismatch', known: plain };
  const unverifiable = forHost.filter((e) => e.marker === 'cert-authority' || (e.marker === undefined && !supported(e)));
  if (unverifiable.length > 0) return { status: 'unverifiable', entries: unverifiable };
  return { status: 'unknown' };
}

/** Key types known for the host, in file order, for ordering the host key algorithms. */
export function knownKeyTypesFor(entries: readonly KnownHostsEntry[], host: string, port: number): string[] {
  const types: string[] = [];
  for (const e of entries) {
    if (e.marker !== undefined || !entryMatchesHost(e, host, port)) continue;
    if (!types.includes(e.keyType)) types.push(e.keyType);
  }
  return types;
}

/** One known_hosts line for a host key, plain (not hashed) so people can read it, e.g. for TOFU. */
export function formatKnownHostsLine(
  host: string,
  port: number,
  keyBlob: Buffer,
  opts: { hashed?: boolean; comment?: string } = {},
): string {
  const type = keyBlobType(keyBlob);
  if (!type) throw new Error('cannot format a known_hosts line: unreadable key blob');
  const name = knownHostsName(host, port);
  const hostField = opts.hashed ? hashKnownHostsName(name) : name;
  return `${hostField} ${type} ${keyBlob.toString('base64')}${opts.comment ? ' ' + opts.comment : ''}\n`;
}
