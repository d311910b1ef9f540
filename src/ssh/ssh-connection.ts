// One authenticated SSH connection to one host, reused for every command. Commands run on their
// own channels (at most MAX_CHANNELS at once, under OpenSSH's MaxSessions; one at a time once the
// host refuses one), through `sudo -n` for non-root users who ask for it. There is no file transfer here on purpose: the engine writes
// files with one exec and a heredoc script (engine/file-batch.ts) and streams the runtime with
// `cat`, so hosts need no SFTP subsystem and sudo users need nothing beyond `sudo -n sh`.
import { existsSync, readFileSync } from 'node:fs';
import { constants as osConstants, homedir } from 'node:os';
import { join } from 'node:path';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import { SshError, commandFailed, describeTarget } from './errors';
import { HostKeyVerifier } from './host-key-verifier';
import type { CommandResult } from '../host/command-result';
import { sudoWrap, withRemoteTimeout } from './shell';

export interface SshTarget {
  host: string;
  /** Default 22. */
  port?: number;
  /** Default root. */
  user?: string;
  /** Private key file (unencrypted; use the agent for keys with a passphrase). */
  privateKeyPath?: string;
  /**
   * Use the ssh-agent at SSH_AUTH_SOCK. When neither this nor privateKeyPath is given, the agent
   * (if SSH_AUTH_SOCK is set) and the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa are tried.
   */
  useAgent?: boolean;
  /** Default ~/.ssh/known_hosts. */
  knownHostsPath?: string;
  /** Trust-on-first-use: accept and record a key for a host that known_hosts does not list. */
  acceptNewHostKeys?: boolean;
  /** Run commands through `sudo -n` (ignored for root). */
  sudo?: boolean;
  /** TCP connect + SSH handshake + authentication. Default 15000. */
  connectTimeoutMs?: number;
  /** Default timeout of each command when exec() is given none. Default 600000; 0 = none. */
  commandTimeoutMs?: number;
  /** Node name for messages. */
  label?: string;
}

export interface ExecOptions {
  /** Written to the command's stdin, which is then closed (it is closed at once without input). */
  input?: string | Buffer;
  timeoutMs?: number;
  /** Resolve with the result instead of rejecting with `command-failed` on a non-zero exit. */
  allowFailure?: boolean;
}

interface RawResult {
  code: number;
  stdout: Buffer;
  stderr: Buffer;
}

/** OpenSSH's default MaxSessions is 10; keep two spare for safety. */
const MAX_CHANNELS = 8;
const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 600_000;

interface Credentials {
  privateKey?: Buffer;
  agent?: string;
  /** For the auth-failed message. */
  tried: string[];
}

function resolveCredentials(t: SshTarget, describe: string): Credentials {
  const tried: string[] = [];
  const creds: Credentials = { tried };
  const sock = process.env.SSH_AUTH_SOCK;
  if (t.useAgent) {
    if (!sock) throw new SshError('auth-failed', describe, 'useAgent is set but SSH_AUTH_SOCK is not: no ssh-agent to ask');
    creds.agent = sock;
    tried.push(`ssh-agent (${sock})`);
  }
  let keyPath = t.privateKeyPath;
  if (keyPath === undefined && t.useAgent === undefined) {
    if (sock) {
      creds.agent = sock;
      tried.push(`ssh-agent (${sock})`);
    }
    keyPath = ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((f) => join(homedir(), '.ssh', f)).find((p) => existsSync(p));
  }
  if (keyPath !== undefined) {
    try {
      creds.privateKey = readFileSync(keyPath);
    } catch (e) {
      throw new SshError('auth-failed', describe, `cannot read private key ${keyPath}: ${(e as Error).message}`, { cause: e });
    }
    tried.push(`private key ${keyPath}`);
  }
  if (!creds.agent && !creds.privateKey) {
    throw new SshError(
      'auth-failed',
      describe,
      'no credentials: give privateKeyPath, or useAgent with SSH_AUTH_SOCK set, or have ~/.ssh/id_ed25519 (or id_ecdsa, id_rsa)',
    );
  }
  return creds;
}

const UNREACHABLE_CODES = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL', 'EHOSTDOWN']);

function mapConnectError(
  err: Error & { level?: string; code?: string },
  t: Required<Pick<SshTarget, 'host' | 'port' | 'user'>>,
  describe: string,
  timeoutMs: number,
  creds: Credentials,
): SshError {
  if (err.level === 'client-timeout' || err.code === 'ETIMEDOUT') {
    return new SshError('timeout', describe, `connect timed out after ${timeoutMs} ms (TCP connect, SSH handshake and authentication)`, {
      cause: err,
    });
  }
  if (err.code === 'ECONNREFUSED') {
    return new SshError('refused', describe, `connection refused on port ${t.port}: is sshd running and listening there?`, { cause: err });
  }
  if ((err.code && UNREACHABLE_CODES.has(err.code)) || err.level === 'client-dns') {
    return new SshError('unreachable', describe, `host unreachable (${err.code ?? err.message})`, { cause: err });
  }
  if (err.level === 'client-authentication') {
    return new SshError(
      'auth-failed',
      describe,
      `authentication failed for user ${t.user} (tried: ${creds.tried.join(', ')}); is the public key in ~${t.user}/.ssh/authorized_keys on the host?`,
      { cause: err },
    );
  }
  if (/encrypted private/i.test(err.message) || /cannot parse privatekey/i.test(err.message)) {
    return new SshError(
      'auth-failed',
      describe,
      `unusable private key: ${err.message} (load keys with a passphrase into ssh-agent and set useAgent)`,
      { cause: err },
    );
  }
  return new SshError('disconnected', describe, `SSH connection failed: ${err.message}`, { cause: err });
}

/**
 * A counting semaphore whose limit can drop to one: a host that refuses a channel while others
 * are open (OpenSSH's MaxSessions, set to 1 on hardened hosts) gets one channel at a time.
 */
export class Slots {
  private inUse = 0;
  private waiters: Array<() => void> = [];
  constructor(private limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    while (this.inUse >= this.limit) await new Promise<void>((r) => this.waiters.push(r));
    this.inUse++;
    try {
      return await fn();
    } finally {
      this.inUse--;
      // Every waiter looks again (the limit may have dropped meanwhile); the first through wins.
      for (const w of this.waiters.splice(0)) w();
    }
  }

  /** From now on, one at a time. */
  serialize(): void {
    this.limit = 1;
  }

  /** Resolves once the caller (holding one slot) is the only one running, or after `ms`. */
  async alone(ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (this.inUse > 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  }
}

/** ssh2's error for a channel the server refused (SSH_MSG_CHANNEL_OPEN_FAILURE), as opposed to a dead connection. */
export function isChannelRefused(err: Error): boolean {
  return typeof (err as Error & { reason?: unknown }).reason === 'number' && /Channel open failure/.test(err.message);
}

/** A refused channel is tried again this many times, with a growing pause (50 ms doubling: ~3 s in all). */
const CHANNEL_OPEN_RETRIES = 6;

export class SshConnection {
  /** `label (host:port)`, used in every error message. */
  readonly describe: string;
  private readonly channels = new Slots(MAX_CHANNELS);
  private closedBy?: SshError;
  private closing?: Promise<void>;

  private constructor(
    private readonly client: Client,
    readonly target: Readonly<SshTarget> & { readonly port: number; readonly user: string },
  ) {
    this.describe = describeTarget(target);
    client.on('error', (err: Error) => {
      this.closedBy ??= new SshError('disconnected', this.describe, `connection lost: ${err.message}`, { cause: err });
    });
    client.on('close', () => {
      this.closedBy ??= new SshError('disconnected', this.describe, 'connection closed');
    });
  }

  /** True once the connection has closed or failed; the pool then opens a new one. */
  get closed(): boolean {
    return this.closedBy !== undefined;
  }

  /** Commands run through `sudo -n` when sudo is asked for and the user is not root. */
  get usesSudo(): boolean {
    return this.target.sudo === true && this.target.user !== 'root';
  }

  static connect(target: SshTarget): Promise<SshConnection> {
    const t = { ...target, port: target.port ?? 22, user: target.user ?? 'root' };
    const describe = describeTarget(t);
    const timeoutMs = t.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    let verifier: HostKeyVerifier;
    let creds: Credentials;
    try {
      verifier = new HostKeyVerifier({
        host: t.host,
        port: t.port,
        describe,
        ...(t.knownHostsPath !== undefined ? { knownHostsPath: t.knownHostsPath } : {}),
        ...(t.acceptNewHostKeys !== undefined ? { acceptNewHostKeys: t.acceptNewHostKeys } : {}),
      });
      creds = resolveCredentials(t, describe);
    } catch (e) {
      return Promise.reject(e);
    }

    return new Promise<SshConnection>((resolve, reject) => {
      const client = new Client();
      let hostKeyError: SshError | undefined;
      let toRecord: Buffer | undefined;
      let settled = false;
      // A backstop for the case where ssh2's own readyTimeout does not fire (e.g. a hung agent).
      const backstop = setTimeout(
        () => fail(new SshError('timeout', describe, `connect timed out after ${timeoutMs} ms`)),
        timeoutMs + 2000,
      );
      const fail = (err: SshError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(backstop);
        client.removeAllListeners('ready');
        client.on('error', () => {}); // late errors of a connection we gave up on
        client.destroy();
        reject(err);
      };
      client.on('handshake', () => {
        if (!toRecord) return;
        try {
          verifier.record(toRecord);
        } catch (e) {
          // An SshError is a verdict (host-key-mismatch: known_hosts changed since the handshake began).
          fail(
            e instanceof SshError
              ? e
              : new SshError('io', describe, `cannot record the new host key in ${verifier.knownHostsPath}: ${(e as Error).message}`, {
                  cause: e,
                }),
          );
        }
      });
      client.once('ready', () => {
        if (settled) return;
        settled = true;
        clearTimeout(backstop);
        resolve(new SshConnection(client, t));
      });
      client.on('error', (err: Error) => {
        fail(hostKeyError ?? mapConnectError(err, t, describe, timeoutMs, creds));
      });
      client.on('close', () => {
        fail(hostKeyError ?? new SshError('disconnected', describe, 'connection closed by the host during the SSH handshake'));
      });
      const config: ConnectConfig = {
        host: t.host,
        port: t.port,
        username: t.user,
        readyTimeout: timeoutMs,
        keepaliveInterval: 15_000,
        keepaliveCountMax: 4,
        algorithms: { serverHostKey: verifier.hostKeyAlgorithms() as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] },
        hostVerifier: (key: Buffer): boolean => {
          const decision = verifier.decide(key);
          if (!decision.accept) {
            hostKeyError = decision.error;
            return false;
          }
          toRecord = decision.record;
          return true;
        },
        ...(creds.privateKey ? { privateKey: creds.privateKey } : {}),
        ...(creds.agent ? { agent: creds.agent } : {}),
      };
      try {
        client.connect(config);
      } catch (e) {
        fail(mapConnectError(e as Error, t, describe, timeoutMs, creds));
      }
    });
  }

  /** Runs a command (through `sudo -n sh -c` when usesSudo). Rejects with command-failed on a non-zero exit unless allowFailure. */
  async exec(command: string, opts: ExecOptions = {}): Promise<CommandResult> {
    const timeoutMs = opts.timeoutMs ?? this.target.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    // sshd ignores "signal" requests on root sessions (no privilege separation for root), so a
    // timed-out command is also bounded on the host: killed (its process group) 2 s after we give up.
    const bounded = timeoutMs > 0 ? withRemoteTimeout(command, Math.ceil(timeoutMs / 1000) + 2) : command;
    const raw = await this.execRaw(this.usesSudo ? sudoWrap(bounded) : bounded, command, { ...opts, timeoutMs });
    return { code: raw.code, stdout: raw.stdout.toString('utf8'), stderr: raw.stderr.toString('utf8') };
  }

  /** `remote` is what is sent; `shown` is what messages say (the command without the sudo wrapper). */
  private execRaw(remote: string, shown: string, opts: ExecOptions): Promise<RawResult> {
    const timeoutMs = opts.timeoutMs ?? this.target.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    return this.channels.run(
      () =>
        new Promise<RawResult>((resolve, reject) => {
          if (this.closedBy) return reject(this.closedBy);
          this.openChannel(remote, (err: Error | undefined, stream: ClientChannel) => {
            if (err) {
              return reject(
                this.closedBy ??
                  new SshError('disconnected', this.describe, `cannot open a channel for '${shown}': ${err.message}`, { cause: err }),
              );
            }
            const out: Buffer[] = [];
            const errOut: Buffer[] = [];
            let code: number | undefined;
            let signal: string | undefined;
            let done = false;
            const timer =
              timeoutMs > 0
                ? setTimeout(() => {
                    if (done) return;
                    done = true;
                    killChannel(stream);
                    stream.close();
                    reject(new SshError('timeout', this.describe, `command timed out after ${timeoutMs} ms: ${shown}`, { command: shown }));
                  }, timeoutMs)
                : undefined;
            stream.on('data', (d: Buffer) => out.push(d));
            stream.stderr.on('data', (d: Buffer) => errOut.push(d));
            stream.on('exit', (c: number | null, sig?: string) => {
              if (c !== null && c !== undefined) code = c;
              if (sig) signal = sig;
            });
            stream.on('error', () => {
              /* surfaced through close without an exit status */
            });
            stream.on('close', () => {
              if (timer) clearTimeout(timer);
              if (done) return;
              done = true;
              const stdout = Buffer.concat(out);
              const stderr = Buffer.concat(errOut);
              if (code === undefined && signal === undefined) {
                return reject(
                  this.closedBy ??
                    new SshError('disconnected', this.describe, `channel closed without an exit status: ${shown}`, { command: shown }),
                );
              }
              const exit = code ?? 128 + ((osConstants.signals as Record<string, number>)[`SIG${signal}`] ?? 0);
              if (exit !== 0 && !opts.allowFailure) {
                const text = stderr.toString('utf8') + (signal ? `\n(killed by signal ${signal})` : '');
                return reject(commandFailed(this.describe, shown, exit, text));
              }
              resolve({ code: exit, stdout, stderr });
            });
            if (opts.input !== undefined) stream.end(opts.input);
            else stream.end();
          });
        }),
    );
  }

  /**
   * Opens an exec channel. A host that refuses it (MaxSessions reached: our other channels, or
   * one it has not finished closing) gets channels one at a time from then on, and this one is
   * tried again once ours are the only one open, a few times with a growing pause.
   */
  private openChannel(remote: string, cb: (err: Error | undefined, stream: ClientChannel) => void, attempt = 0): void {
    this.client.exec(remote, (err: Error | undefined, stream: ClientChannel) => {
      if (!err || this.closedBy || !isChannelRefused(err) || attempt >= CHANNEL_OPEN_RETRIES) return cb(err, stream);
      this.channels.serialize();
      const pause = 50 * 2 ** attempt;
      void this.channels.alone(30_000).then(() => setTimeout(() => this.openChannel(remote, cb, attempt + 1), pause));
    });
  }

  async close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (this.closedBy) return resolve();
      const timer = setTimeout(() => {
        this.client.destroy();
        resolve();
      }, 2000);
      this.client.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.closedBy = new SshError('disconnected', this.describe, 'connection closed by podnet');
      this.client.end();
    });
    return this.closing;
  }
}

/**
 * Sends a KILL "signal" request on a session channel; OpenSSH (>= 7.9) killpg()s the command.
 * ssh2's Channel.signal() sends nothing once our side of the channel is ended (stdin closed, as
 * it is for every exec here), so go one level down when the channel is still open.
 */
function killChannel(stream: ClientChannel): void {
  const ch = stream as unknown as {
    outgoing?: { id: number; state: string };
    _client?: { _protocol?: { signal(id: number, sig: string): void } };
  };
  try {
    if (ch.outgoing?.state === 'open' && ch._client?._protocol) ch._client._protocol.signal(ch.outgoing.id, 'KILL');
    else stream.signal('KILL');
  } catch {
    /* channel already gone */
  }
}
